package ingest

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"

	"reelfeed/event"
	"reelfeed/feature"
	"reelfeed/internal/testenv"
	"reelfeed/profile"
)

func embeddedBus(t *testing.T, dir string) *Bus {
	t.Helper()
	return openEmbedded(t, dir)
}

func embeddedBusB(b *testing.B) *Bus { return openEmbedded(b, b.TempDir()) }

func openEmbedded(t testing.TB, dir string) *Bus {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	b, err := OpenBus(ctx, BusConfig{DataDir: dir, DuplicateWindow: time.Minute, EventsMaxAge: time.Hour, EventsMaxBytes: 1 << 30}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// externalBus connects to the machine's NATS with streams unique to the
// test, deleted when it ends.
func externalBus(t *testing.T) *Bus {
	t.Helper()
	url := testenv.NATSURL(t)
	prefix := "RFTEST_" + testenv.RandomID()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	b, err := OpenBus(ctx, BusConfig{URL: url, StreamPrefix: prefix, DuplicateWindow: time.Minute, EventsMaxAge: time.Hour, EventsMaxBytes: 64 << 20}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		for _, s := range []string{b.eventsStream(), b.impressionsStream(), b.catalogStream()} {
			_ = b.js.DeleteStream(ctx, s)
		}
		b.Close()
	})
	return b
}

func makeEvents(n int, user string) []event.Event {
	evs := make([]event.Event, n)
	base := time.Now().Add(-time.Minute)
	for i := range evs {
		evs[i] = event.Event{
			ID: fmt.Sprintf("%s-e%d", user, i), UserID: user, VideoID: fmt.Sprintf("v%d", i%7),
			Type: event.Complete, TS: base.Add(time.Duration(i) * time.Millisecond),
			Category: "pets", Tags: []string{"cats"}, UploaderID: "up1",
		}
	}
	return evs
}

func TestEmbeddedJetStreamKeepsEventsAcrossRestart(t *testing.T) {
	dir := t.TempDir()
	b := embeddedBus(t, dir)
	if _, err := b.PublishEvents(context.Background(), makeEvents(5, "alice")); err != nil {
		t.Fatal(err)
	}
	b.Close()

	b2 := embeddedBus(t, dir)
	defer b2.Close()
	store := profile.NewMemory(profile.DefaultConfig())
	feats := feature.NewMemory(feature.DefaultConfig())
	ap := &Applier{Profiles: store, Features: feats}
	cons, err := b2.StartEventConsumers(context.Background(), ConsumerConfig{Batch: 100}, ap.Apply, ConsumerMetrics{})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		for _, c := range cons {
			c.Stop()
		}
	}()
	waitFor(t, 5*time.Second, func() bool {
		p, _ := store.Get(context.Background(), "alice", time.Now())
		return p.Counts[event.Complete] == 5
	})
}

func TestStreamDropsRepeatedEventID(t *testing.T) {
	b := embeddedBus(t, t.TempDir())
	defer b.Close()
	evs := makeEvents(3, "alice")
	if _, err := b.PublishEvents(context.Background(), evs); err != nil {
		t.Fatal(err)
	}
	res, err := b.PublishEvents(context.Background(), evs[1:])
	if err != nil {
		t.Fatal(err)
	}
	if res.Duplicates != 2 || res.Stored != 0 {
		t.Fatalf("republished ids: %+v, want 2 duplicates", res)
	}
}

func TestPublishAfterNATSGoneIsAnError(t *testing.T) {
	b := embeddedBus(t, t.TempDir())
	b.Close()
	if _, err := b.PublishEvents(context.Background(), makeEvents(1, "x")); err == nil {
		t.Fatal("publishing with NATS gone must fail, never claim the events are stored")
	}
}

// A replica that wrote a batch to the stores but died before acknowledging
// it: the events are redelivered to another replica, which applies them
// again — and the stores, idempotent per event id, change nothing.
// Nothing is lost, nothing is doubled. Real NATS, real Redis.
func TestConsumerKilledMidBatchLosesAndDoublesNothing(t *testing.T) {
	b := externalBus(t)
	rc, prefix := testenv.Redis(t)
	profiles := profile.NewRedis(rc, prefix, profile.DefaultConfig())
	features := feature.NewRedis(rc, prefix, feature.Config{DedupeTTL: time.Hour})
	ap := &Applier{Profiles: profiles, Features: features}

	const n = 300
	if _, err := b.PublishEvents(context.Background(), makeEvents(n, "carol")); err != nil {
		t.Fatal(err)
	}

	// Replica A: applies its first batch, then "dies" before acking: its
	// apply never returns and its connection is closed abruptly.
	var appliedByA atomic.Int64
	block := make(chan struct{})
	dying := func(ctx context.Context, evs []event.Event) error {
		if err := ap.Apply(ctx, evs); err != nil {
			return err
		}
		appliedByA.Add(int64(len(evs)))
		<-block
		return nil
	}
	ctx := context.Background()
	cfg := ConsumerConfig{Shared: true, Batch: 100, AckWait: time.Second}
	replicaA, err := b.startConsumer(ctx, b.eventsStream(), cfg, dying, ConsumerMetrics{})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, func() bool { return appliedByA.Load() > 0 })
	replicaA.cc.Stop() // kill -9: no drain, no acks
	defer close(block)

	// Replica B takes over the same durable consumer.
	var mu sync.Mutex
	seen := map[string]int{}
	counting := func(ctx context.Context, evs []event.Event) error {
		mu.Lock()
		for _, e := range evs {
			seen[e.ID]++
		}
		mu.Unlock()
		return ap.Apply(ctx, evs)
	}
	replicaB, err := b.startConsumer(ctx, b.eventsStream(), cfg, counting, ConsumerMetrics{})
	if err != nil {
		t.Fatal(err)
	}
	defer replicaB.Stop()
	waitFor(t, 15*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(seen) >= n-int(appliedByA.Load())
	})
	// Give any stray redelivery a chance to (not) double-count.
	time.Sleep(1500 * time.Millisecond)
	p, err := profiles.Get(ctx, "carol", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if got := p.Counts[event.Complete]; got != n {
		t.Fatalf("profile counts %d completes, want exactly %d", got, n)
	}
	stats, err := features.Get(ctx, nil, []string{"v0", "v1", "v2", "v3", "v4", "v5", "v6"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	var total int64
	for _, s := range stats {
		total += s.Lifetime[event.Complete]
	}
	if total != n {
		t.Fatalf("video features count %d completes, want exactly %d", total, n)
	}
}

func waitFor(t *testing.T, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %s", d)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
