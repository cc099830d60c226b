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
}

// Apply implements ApplyFunc.
func (a *Applier) Apply(ctx context.Context, events []event.Event) error {
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
