package ingest

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"reelfeed/event"
)

// EventLog replays the events stream for the batch jobs (item-to-item,
// user-CF): every replica's jobs see the same history, whatever store
// backs the profiles.
type EventLog struct{ bus *Bus }

// EventLog returns the replayable history of behaviour events.
func (b *Bus) EventLog() *EventLog { return &EventLog{bus: b} }

// Replay calls fn for every event stored since `since`, oldest first, up to
// the end of the stream as it was when Replay started.
func (l *EventLog) Replay(ctx context.Context, since time.Time, fn func(event.Event) error) error {
	js := l.bus.js
	stream, err := js.Stream(ctx, l.bus.eventsStream())
	if err != nil {
		return fmt.Errorf("events stream: %w", err)
	}
	info, err := stream.Info(ctx)
	if err != nil {
		return fmt.Errorf("events stream: %w", err)
	}
	last := info.State.LastSeq
	if info.State.Msgs == 0 || last == 0 {
		return nil
	}
	cfg := jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverAllPolicy}
	if !since.IsZero() {
		cfg.DeliverPolicy = jetstream.DeliverByStartTimePolicy
		cfg.OptStartTime = &since
	}
	cons, err := js.OrderedConsumer(ctx, l.bus.eventsStream(), cfg)
	if err != nil {
		return fmt.Errorf("replay consumer: %w", err)
	}
	var events []event.Event
	for {
		batch, err := cons.Fetch(1000, jetstream.FetchMaxWait(2*time.Second))
		if err != nil {
			return fmt.Errorf("replay fetch: %w", err)
		}
		n := 0
		for msg := range batch.Messages() {
			n++
			md, err := msg.Metadata()
			if err != nil {
				return err
			}
			// Same decoding as the consumers, so the jobs read whatever
			// shape the stores were built from; corrupt messages are
			// skipped, as the consumers skip them.
			events, err = appendMessageEvents(events[:0], msg.Data())
			if err == nil {
				for _, ev := range events {
					if err := fn(ev); err != nil {
						return err
					}
				}
			}
			if md.Sequence.Stream >= last || md.NumPending == 0 {
				return nil
			}
		}
		if err := batch.Error(); err != nil && !errors.Is(err, jetstream.ErrNoMessages) && !errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("replay: %w", err)
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if n == 0 {
			return nil // nothing since `since`
		}
	}
}
