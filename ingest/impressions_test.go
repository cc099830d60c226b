package ingest

import (
	"context"
	"encoding/json"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"reelfeed/event"
)

// appliedLog is an ApplyFunc that remembers every event id it was given,
// repeats included, and the Applied metric next to it.
type appliedLog struct {
	mu      sync.Mutex
	ids     []string
	metered atomic.Int64
}

func (l *appliedLog) apply(_ context.Context, evs []event.Event) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, ev := range evs {
		l.ids = append(l.ids, ev.ID)
	}
	return nil
}

func (l *appliedLog) metrics() ConsumerMetrics {
	return ConsumerMetrics{Applied: func(_ string, n int) { l.metered.Add(int64(n)) }}
}

func (l *appliedLog) sorted() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Sorted(slices.Values(l.ids))
}

func (l *appliedLog) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.ids)
}

// consumeImpressions starts a consumer on the impressions stream and waits
// until it applied everything stored so far.
func consumeImpressions(t *testing.T, bus *Bus, cfg ConsumerConfig) *appliedLog {
	t.Helper()
	log := &appliedLog{}
	c, err := bus.startConsumer(context.Background(), bus.impressionsStream(), cfg, log.apply, log.metrics())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Stop)
	waitFor(t, 5*time.Second, c.CaughtUp)
	return log
}

// publishThroughSink hands pages to a fresh sink and closes it, which
// flushes them; it fails the test if any impression was dropped.
func publishThroughSink(t *testing.T, bus *Bus, pages ...[]event.Event) {
	t.Helper()
	var dropped atomic.Int64
	sink := NewImpressionSink(bus, len(pages), zap.NewNop(), func(n int) { dropped.Add(int64(n)) })
	for _, page := range pages {
		sink.Publish(context.Background(), page)
	}
	sink.Close()
	if n := dropped.Load(); n > 0 {
		t.Fatalf("%d impressions dropped", n)
	}
}

func impressionMsgs(t *testing.T, bus *Bus) uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := bus.js.Stream(ctx, bus.impressionsStream())
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Msgs
}

// publishRaw stores data on the impressions subject as-is: what an older
// version, or corruption, left in the stream.
func publishRaw(t *testing.T, bus *Bus, msgID string, data []byte) {
	t.Helper()
	msg := &nats.Msg{Subject: bus.ImpressionsSubject(), Data: data, Header: nats.Header{}}
	msg.Header.Set(jetstream.MsgIDHeader, msgID)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := bus.js.PublishMsg(ctx, msg); err != nil {
		t.Fatal(err)
	}
}

func TestImpressionPageIsOneMessageAndEveryEventIsApplied(t *testing.T) {
	bus := embeddedBus(t, t.TempDir())
	defer bus.Close()
	page := impressionPage("r1", "alice", 10)
	publishThroughSink(t, bus, page)

	if n := impressionMsgs(t, bus); n != 1 {
		t.Fatalf("a page of 10 impressions became %d stream messages, want 1", n)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	stream, err := bus.js.Stream(ctx, bus.impressionsStream())
	if err != nil {
		t.Fatal(err)
	}
	stored, err := stream.GetLastMsgForSubject(ctx, bus.ImpressionsSubject())
	if err != nil {
		t.Fatal(err)
	}
	if got := stored.Header.Get(jetstream.MsgIDHeader); got != pageMsgID(page) {
		t.Fatalf("message id %q, want the page id %q", got, pageMsgID(page))
	}

	applied := consumeImpressions(t, bus, ConsumerConfig{Batch: 100})
	if got, want := applied.sorted(), slices.Sorted(slices.Values(eventIDs(page))); !slices.Equal(got, want) {
		t.Fatalf("applied %v, want every impression of the page once: %v", got, want)
	}
	if n := applied.metered.Load(); n != 10 {
		t.Fatalf("Applied metric counted %d, want 10 events", n)
	}
}

func TestRepeatedImpressionPage(t *testing.T) {
	first := impressionPage("r1", "alice", 10)
	cases := []struct {
		name        string
		again       []event.Event
		wantMsgs    uint64
		wantApplied int
	}{
		// A page published again (same request, same impressions) is
		// stored once: the stream dedupes per page.
		{name: "same page is stored once", again: impressionPage("r1", "alice", 10), wantMsgs: 1, wantApplied: 10},
		// A client retrying with the same request id gets other videos:
		// they were served, so they are stored; the one repeated
		// impression (v9) reaches the stores twice, which dedupe by id.
		{name: "same request with other videos is stored", again: retriedPage(t, "r1", "alice"), wantMsgs: 2, wantApplied: 15},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			bus := embeddedBus(t, t.TempDir())
			defer bus.Close()
			publishThroughSink(t, bus, first, tc.again)
			if n := impressionMsgs(t, bus); n != tc.wantMsgs {
				t.Fatalf("%d stream messages, want %d", n, tc.wantMsgs)
			}
			if n := consumeImpressions(t, bus, ConsumerConfig{Batch: 100}).count(); n != tc.wantApplied {
				t.Fatalf("%d events applied, want %d", n, tc.wantApplied)
			}
		})
	}
}

// retriedPage is what a retried request returns once the first page's
// videos are filtered as shown: v9 again (nothing else left) and 4 others.
func retriedPage(t *testing.T, requestID, user string) []event.Event {
	t.Helper()
	page := impressionPage(requestID, user, 14)[9:]
	for i := 1; i < len(page); i++ {
		page[i].VideoID = "other-" + page[i].VideoID
		page[i].ID = "imp-" + requestID + "-" + page[i].VideoID
	}
	return page
}

// Impressions stored by a version that published one message per event
// must still apply after an upgrade, next to pages.
func TestSingleEventImpressionMessagesStillApply(t *testing.T) {
	bus := embeddedBus(t, t.TempDir())
	defer bus.Close()
	old := impressionPage("r-old", "alice", 3)
	for _, ev := range old {
		data, err := json.Marshal(ev)
		if err != nil {
			t.Fatal(err)
		}
		publishRaw(t, bus, ev.ID, data)
	}
	page := impressionPage("r-new", "alice", 4)
	publishThroughSink(t, bus, page)

	applied := consumeImpressions(t, bus, ConsumerConfig{Batch: 100})
	want := slices.Sorted(slices.Values(append(eventIDs(old), eventIDs(page)...)))
	if got := applied.sorted(); !slices.Equal(got, want) {
		t.Fatalf("applied %v, want %v", got, want)
	}
	if n := applied.metered.Load(); n != 7 {
		t.Fatalf("Applied metric counted %d, want 7 events", n)
	}
}

// A corrupt message is terminated on the shared consumer, never
// redelivered, and does not hold back the messages after it.
func TestCorruptImpressionMessageIsTerminated(t *testing.T) {
	cases := []struct {
		name string
		data string
	}{
		{name: "array element without id", data: `[{"event_id":"imp-x-v1","user_id":"u","video_id":"v1","type":"impression"},{"user_id":"u","video_id":"v2","type":"impression"}]`},
		{name: "truncated array", data: `[{"event_id":"imp-x-v1","user_id":"u"`},
		{name: "neither object nor array", data: `"impression"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			bus := embeddedBus(t, t.TempDir())
			defer bus.Close()
			publishRaw(t, bus, "corrupt", []byte(tc.data))
			page := impressionPage("r1", "alice", 5)
			publishThroughSink(t, bus, page)

			applied := consumeImpressions(t, bus, ConsumerConfig{Shared: true, Batch: 100, AckWait: time.Second})
			if got, want := applied.sorted(), slices.Sorted(slices.Values(eventIDs(page))); !slices.Equal(got, want) {
				t.Fatalf("applied %v, want only the good page %v", got, want)
			}
			durable, err := bus.js.Consumer(context.Background(), bus.impressionsStream(), "applier")
			if err != nil {
				t.Fatal(err)
			}
			// Unterminated, the corrupt message would stay pending and come
			// back after AckWait.
			var info *jetstream.ConsumerInfo
			waitFor(t, 3*time.Second, func() bool {
				info, err = durable.Info(context.Background())
				return err == nil && info.NumAckPending == 0 && info.NumPending == 0
			})
			time.Sleep(1500 * time.Millisecond) // past AckWait
			if info, err = durable.Info(context.Background()); err != nil || info.NumRedelivered != 0 || info.NumAckPending != 0 {
				t.Fatalf("corrupt message not terminated: %+v (err %v)", info, err)
			}
		})
	}
}

func TestImpressionSinkCountsDroppedEvents(t *testing.T) {
	pages := [][]event.Event{impressionPage("r1", "a", 4), impressionPage("r2", "a", 3), impressionPage("r3", "a", 5)}
	cases := []struct {
		name    string
		publish func(*Bus, *ImpressionSink)
	}{
		{name: "stream unavailable", publish: func(bus *Bus, sink *ImpressionSink) {
			bus.Close()
			for _, p := range pages {
				sink.Publish(context.Background(), p)
			}
			sink.Close()
		}},
		{name: "sink closed", publish: func(bus *Bus, sink *ImpressionSink) {
			sink.Close()
			for _, p := range pages {
				sink.Publish(context.Background(), p)
			}
			bus.Close()
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			bus := embeddedBus(t, t.TempDir())
			var dropped atomic.Int64
			sink := NewImpressionSink(bus, len(pages), zap.NewNop(), func(n int) { dropped.Add(int64(n)) })
			tc.publish(bus, sink)
			if n := dropped.Load(); n != 12 {
				t.Fatalf("dropped %d, want the 12 impressions of 3 pages", n)
			}
		})
	}
}

// Under load the sink publishes what queued up together; every page still
// becomes its own message.
func TestImpressionSinkFlushesQueuedPages(t *testing.T) {
	bus := embeddedBus(t, t.TempDir())
	defer bus.Close()
	pages := make([][]event.Event, 3*maxPagesPerFlush/2)
	for i := range pages {
		pages[i] = impressionPage("r"+itoa(i), "alice", 2)
	}
	publishThroughSink(t, bus, pages...)
	if n := impressionMsgs(t, bus); n != uint64(len(pages)) {
		t.Fatalf("%d messages, want one per page (%d)", n, len(pages))
	}
	applied := consumeImpressions(t, bus, ConsumerConfig{Batch: 1000})
	if total, distinct := applied.count(), len(slices.Compact(applied.sorted())); total != 2*len(pages) || distinct != total {
		t.Fatalf("applied %d events (%d distinct), want %d once each", total, distinct, 2*len(pages))
	}
}

// The training-sample join (app, Redis mode) follows both streams live with
// OnlyNew consumers: it must see every impression of a page published
// after it started, and none from before.
func TestLiveOnlyConsumersSeeWholePages(t *testing.T) {
	bus := embeddedBus(t, t.TempDir())
	defer bus.Close()
	publishThroughSink(t, bus, impressionPage("r-before", "alice", 3))
	observed := &appliedLog{}
	consumers, err := bus.StartEventConsumers(context.Background(), ConsumerConfig{OnlyNew: true, Batch: 100}, observed.apply, observed.metrics())
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		for _, c := range consumers {
			c.Stop()
		}
	}()
	live := impressionPage("r-live", "alice", 6)
	publishThroughSink(t, bus, live)
	want := slices.Sorted(slices.Values(eventIDs(live)))
	waitFor(t, 5*time.Second, func() bool { return observed.count() >= len(want) })
	time.Sleep(50 * time.Millisecond) // a page from before would have arrived first
	if got := observed.sorted(); !slices.Equal(got, want) {
		t.Fatalf("observed %v, want exactly the live page %v", got, want)
	}
}

// A page that cannot be encoded is dropped and counted on its own; the
// pages flushed with it are still stored.
func TestUnencodableImpressionPageIsDroppedAlone(t *testing.T) {
	bus := embeddedBus(t, t.TempDir())
	defer bus.Close()
	bad := impressionPage("r-bad", "alice", 3)
	bad[1].Type = event.NumTypes // not a type: does not marshal
	pages := [][]event.Event{impressionPage("r1", "alice", 2), bad, impressionPage("r2", "alice", 2)}
	lost, err := bus.publishPages(pages)
	if lost != 3 || err == nil {
		t.Fatalf("lost %d (err %v), want the 3 impressions of the bad page and an error", lost, err)
	}
	if n := impressionMsgs(t, bus); n != 2 {
		t.Fatalf("%d messages stored, want the 2 good pages", n)
	}
}
