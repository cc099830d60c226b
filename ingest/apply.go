package ingest

import (
	"context"
	"fmt"

	"reelfeed/event"
	"reelfeed/feature"
	"reelfeed/profile"
)

// Applier writes consumed events into the profile and feature stores and
// tells observers (hot-list spike detection, training-sample join) what was
// applied. Each store is idempotent per event id on its own, so a batch
// that fails half-way is simply applied again.
type Applier struct {
	Profiles profile.Store
	Features feature.Store
	// Observers see every batch after both stores accepted it, in stream
	// order. They must be cheap and must not block.
	Observers []func([]event.Event)
	// Dropped is told about events that can never be applied (corrupt
	// stream content); they are skipped so they cannot stall the stream.
	Dropped func(ev event.Event, why string)
}

// applicable reports why an event can never be applied ("" if it can).
// The API validates every event, so this only catches corruption.
func applicable(ev *event.Event) string {
	switch {
	case ev.ID == "":
		return "no event id"
	case ev.UserID == "":
		return "no user id"
	case ev.VideoID == "":
		return "no video id"
	case !ev.Type.Valid():
		return "unknown type"
	case ev.TS.IsZero():
		return "no timestamp"
	}
	return ""
}

// Apply implements ApplyFunc.
func (a *Applier) Apply(ctx context.Context, events []event.Event) error {
	for i := 0; i < len(events); i++ {
		if why := applicable(&events[i]); why != "" {
			if a.Dropped != nil {
				a.Dropped(events[i], why)
			}
			events = append(events[:i:i], events[i+1:]...)
			i--
		}
	}
	if len(events) == 0 {
		return nil
	}
	if _, err := a.Profiles.Apply(ctx, events); err != nil {
		return fmt.Errorf("profile store: %w", err)
	}
	if _, err := a.Features.Apply(ctx, events); err != nil {
		return fmt.Errorf("feature store: %w", err)
	}
	for _, observe := range a.Observers {
		observe(events)
	}
	return nil
}
