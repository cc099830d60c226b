// Package storetest is the conformance suite every feature.Store backend
// passes, so the backends are interchangeable and return identical numbers.
//
// The windows it checks are the documented contract (see feature): reading
// at now, Hour counts events whose minute (event time truncated to the
// minute) is one of the 60 ending with now's minute, Day events whose hour
// is one of the 24 ending with now's hour, Lifetime all; events dated after
// now count in every window.
package storetest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"reelfeed/event"
	"reelfeed/feature"
)

// base is on an hour boundary, so offsets read as bucket positions.
var base = time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)

// Run runs the suite. newStore returns an empty store whose reads see every
// Apply that returned before them (for the Redis backend: CacheTTL 0); the
// suite closes it.
func Run(t *testing.T, newStore func(t *testing.T) feature.Store) {
	open := func(t *testing.T) feature.Store {
		t.Helper()
		s := newStore(t)
		t.Cleanup(func() { _ = s.Close() })
		return s
	}
	t.Run("HourAndDayEdges", func(t *testing.T) { testEdges(t, open(t)) })
	t.Run("OlderEventsCountInLongerWindows", func(t *testing.T) { testOlderEvents(t, open(t)) })
	t.Run("FutureEvents", func(t *testing.T) { testFutureEvents(t, open(t)) })
	t.Run("LateEventsAfterRingMoved", func(t *testing.T) { testLateEvents(t, open(t)) })
	t.Run("EveryType", func(t *testing.T) { testEveryType(t, open(t)) })
	t.Run("Duplicates", func(t *testing.T) { testDuplicates(t, open(t)) })
	t.Run("InvalidBatchAppliesNothing", func(t *testing.T) { testInvalidBatch(t, open(t)) })
	t.Run("UnknownAndRepeatedIDs", func(t *testing.T) { testUnknownIDs(t, open(t)) })
	t.Run("GetAppendsToDst", func(t *testing.T) { testAppendsToDst(t, open(t)) })
	t.Run("MatchesReferenceInAnyOrder", func(t *testing.T) { testReference(t, open(t), open(t)) })
	t.Run("ConcurrentApplyAndGet", func(t *testing.T) { testConcurrent(t, open(t)) })
}

// ev builds a play event unless a type is given.
func ev(id, video string, ts time.Time, typ ...event.Type) event.Event {
	e := event.Event{ID: id, UserID: "u-" + id, VideoID: video, Type: event.Play, TS: ts}
	if len(typ) > 0 {
		e.Type = typ[0]
	}
	return e
}

func apply(t *testing.T, s feature.Store, events ...event.Event) int {
	t.Helper()
	n, err := s.Apply(context.Background(), events)
	if err != nil {
		t.Fatalf("Apply: %v", err)
	}
	return n
}

func get(t *testing.T, s feature.Store, now time.Time, ids ...string) []feature.Stats {
	t.Helper()
	st, err := s.Get(context.Background(), nil, ids, now)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	if len(st) != len(ids) {
		t.Fatalf("Get(%d ids) returned %d stats", len(ids), len(st))
	}
	return st
}

// plays is a Counts with only Play set.
func plays(n int64) event.Counts {
	var c event.Counts
	c[event.Play] = n
	return c
}

type windowCase struct {
	name                string
	now                 time.Time
	hour, day, lifetime int64
}

func checkPlays(t *testing.T, s feature.Store, video string, cases []windowCase) {
	t.Helper()
	for _, c := range cases {
		got := get(t, s, c.now, video)[0]
		if got.VideoID != video {
			t.Errorf("%s: VideoID = %q, want %q", c.name, got.VideoID, video)
		}
		if got.Hour != plays(c.hour) || got.Day != plays(c.day) || got.Lifetime != plays(c.lifetime) {
			t.Errorf("%s (now %s): plays hour/day/lifetime = %d/%d/%d, want %d/%d/%d", c.name, c.now.Format(time.RFC3339),
				got.Hour[event.Play], got.Day[event.Play], got.Lifetime[event.Play], c.hour, c.day, c.lifetime)
		}
	}
}

func testEdges(t *testing.T, s feature.Store) {
	at := base.Add(30 * time.Second)
	apply(t, s, ev("e1", "v1", at))
	checkPlays(t, s, "v1", []windowCase{
		{"same instant", at, 1, 1, 1},
		{"earlier in the same minute", base, 1, 1, 1},
		{"last second of the 60th minute", base.Add(59*time.Minute + 59*time.Second), 1, 1, 1},
		// The event is 59m30s old, but its minute has left the window:
		// windows are accurate to a bucket and never count older events.
		{"61st minute", base.Add(time.Hour), 0, 1, 1},
		{"last second of the 24th hour", base.Add(23*time.Hour + 59*time.Minute + 59*time.Second), 0, 1, 1},
		{"25th hour", base.Add(24 * time.Hour), 0, 0, 1},
		{"a month later", base.Add(30 * 24 * time.Hour), 0, 0, 1},
	})
}

func testOlderEvents(t *testing.T, s feature.Store) {
	now := base.Add(time.Second)
	apply(t, s,
		ev("now", "v1", base),
		ev("59m", "v1", base.Add(-59*time.Minute)),                 // first minute of the hour window
		ev("61m", "v1", base.Add(-61*time.Minute)),                 // day only
		ev("2h", "v1", base.Add(-2*time.Hour)),                     // day only
		ev("22h30m", "v1", base.Add(-22*time.Hour-30*time.Minute)), // first hour of the day window
		ev("25h", "v1", base.Add(-25*time.Hour)),                   // lifetime only
		ev("30d", "v1", base.Add(-30*24*time.Hour)),                // lifetime only
	)
	checkPlays(t, s, "v1", []windowCase{{"now", now, 2, 5, 7}})
}

func testFutureEvents(t *testing.T, s feature.Store) {
	apply(t, s,
		ev("past", "v1", base.Add(-58*time.Minute)),
		ev("soon", "v1", base.Add(10*time.Minute)),
		ev("skew", "v1", base.Add(feature.FutureSkew)),
	)
	checkPlays(t, s, "v1", []windowCase{
		{"reader behind the events", base, 3, 3, 3},
		{"reader past two of them", base.Add(40 * time.Minute), 2, 3, 3},
		{"reader past all of them", base.Add(2 * time.Hour), 0, 3, 3},
	})
}

func testLateEvents(t *testing.T, s feature.Store) {
	now := base.Add(2 * time.Hour)
	apply(t, s, ev("a", "v1", base))
	apply(t, s, ev("b", "v1", now))
	checkPlays(t, s, "v1", []windowCase{{"after the newest", now, 1, 2, 2}})

	// Arriving after newer events moved the video's windows on.
	apply(t, s, ev("late-5h", "v1", now.Add(-5*time.Hour)), ev("late-30h", "v1", now.Add(-30*time.Hour)))
	apply(t, s, ev("late-10m", "v1", now.Add(-10*time.Minute)))
	checkPlays(t, s, "v1", []windowCase{{"after late arrivals", now, 2, 4, 5}})

	// A jump of many days, then a small step back.
	later := now.Add(10 * 24 * time.Hour)
	apply(t, s, ev("c", "v1", later))
	apply(t, s, ev("d", "v1", later.Add(-10*time.Minute)))
	checkPlays(t, s, "v1", []windowCase{{"days later", later, 2, 2, 7}})
}

func testEveryType(t *testing.T, s feature.Store) {
	var events []event.Event
	var want event.Counts
	for i, typ := range event.Types() {
		for k := 0; k <= i; k++ {
			events = append(events, ev(fmt.Sprintf("%s-%d", typ, k), "v1", base, typ))
			want[typ]++
		}
	}
	if n := apply(t, s, events...); n != len(events) {
		t.Fatalf("applied %d, want %d", n, len(events))
	}
	got := get(t, s, base, "v1")[0]
	if got.Hour != want || got.Day != want || got.Lifetime != want {
		t.Fatalf("got hour %v day %v lifetime %v, want %v in each", got.Hour, got.Day, got.Lifetime, want)
	}
}

func testDuplicates(t *testing.T, s feature.Store) {
	a := ev("a", "v1", base)
	steps := []struct {
		name  string
		batch []event.Event
		want  int
	}{
		{"repeat within a batch", []event.Event{a, a, ev("b", "v1", base)}, 2},
		{"repeat in a later batch", []event.Event{a, ev("c", "v1", base)}, 1},
		{"same id with another type", []event.Event{ev("b", "v1", base, event.Like)}, 0},
		{"only repeats", []event.Event{a, a}, 0},
		{"empty batch", nil, 0},
	}
	for _, st := range steps {
		if n := apply(t, s, st.batch...); n != st.want {
			t.Errorf("%s: applied %d, want %d", st.name, n, st.want)
		}
	}
	checkPlays(t, s, "v1", []windowCase{{"after repeats", base, 3, 3, 3}})
	if got := get(t, s, base, "v1")[0]; got.Lifetime[event.Like] != 0 {
		t.Errorf("a repeated id with another type was counted: %v", got.Lifetime)
	}
}

func testInvalidBatch(t *testing.T, s feature.Store) {
	bad := []struct {
		name string
		e    event.Event
	}{
		{"no event id", ev("", "v1", base)},
		{"no video id", ev("x", "", base)},
		{"unknown type", ev("x", "v1", base, event.NumTypes)},
	}
	for _, b := range bad {
		n, err := s.Apply(context.Background(), []event.Event{ev("ok-"+b.name, "v1", base), b.e})
		if err == nil || n != 0 {
			t.Errorf("%s: Apply = %d, %v; want 0 and an error", b.name, n, err)
		}
	}
	checkPlays(t, s, "v1", []windowCase{{"after rejected batches", base, 0, 0, 0}})
	// The valid events of a rejected batch are still new.
	if n := apply(t, s, ev("ok-no event id", "v1", base)); n != 1 {
		t.Errorf("event from a rejected batch applied %d, want 1", n)
	}
}

func testUnknownIDs(t *testing.T, s feature.Store) {
	apply(t, s, ev("a", "known", base), ev("b", "known", base))
	ids := []string{"missing", "known", "missing", "known", "other"}
	got := get(t, s, base, ids...)
	for i, id := range ids {
		if got[i].VideoID != id {
			t.Errorf("stats[%d].VideoID = %q, want %q", i, got[i].VideoID, id)
		}
		want := feature.Stats{VideoID: id}
		if id == "known" {
			want.Hour, want.Day, want.Lifetime = plays(2), plays(2), plays(2)
		}
		if got[i] != want {
			t.Errorf("stats[%d] = %+v, want %+v", i, got[i], want)
		}
	}
	if st := get(t, s, base); len(st) != 0 {
		t.Errorf("Get of no ids = %v, want empty", st)
	}
}

// reference computes the documented windows directly from the events.
type reference struct {
	seen   map[string]bool
	events []event.Event
}

func (r *reference) add(events ...event.Event) {
	if r.seen == nil {
		r.seen = make(map[string]bool)
	}
	for _, e := range events {
		if !r.seen[e.VideoID+"\x00"+e.ID] {
			r.seen[e.VideoID+"\x00"+e.ID] = true
			r.events = append(r.events, e)
		}
	}
}

func (r *reference) stats(video string, now time.Time) feature.Stats {
	st := feature.Stats{VideoID: video}
	nowMinute, nowHour := now.Unix()/60, now.Unix()/3600
	for _, e := range r.events {
		if e.VideoID != video {
			continue
		}
		st.Lifetime[e.Type]++
		if e.TS.Unix()/60 >= nowMinute-59 {
			st.Hour[e.Type]++
		}
		if e.TS.Unix()/3600 >= nowHour-23 {
			st.Day[e.Type]++
		}
	}
	return st
}

// randomEvents returns n events over videos, dated from 30 h before base
// to 5 minutes after it, with about one in ten repeating an earlier event.
func randomEvents(rng *rand.Rand, n int, videos []string, idPrefix string) []event.Event {
	out := make([]event.Event, 0, n)
	for i := 0; i < n; i++ {
		if i > 0 && rng.IntN(10) == 0 {
			out = append(out, out[rng.IntN(len(out))])
			continue
		}
		offset := time.Duration(rng.Int64N(int64(30*time.Hour+5*time.Minute))) - 30*time.Hour
		typ := event.Type(rng.IntN(int(event.NumTypes)))
		out = append(out, ev(fmt.Sprintf("%s%d", idPrefix, i), videos[rng.IntN(len(videos))], base.Add(offset), typ))
	}
	return out
}

// readTimes are at or after every generated event, minus FutureSkew at most.
var readTimes = []time.Duration{0, time.Minute, 30 * time.Minute, 59 * time.Minute, 61 * time.Minute,
	6 * time.Hour, 23 * time.Hour, 25 * time.Hour, 40 * 24 * time.Hour}

func checkReference(t *testing.T, s feature.Store, ref *reference, videos []string) {
	t.Helper()
	ids := append(append([]string{}, videos...), "never-seen")
	for _, d := range readTimes {
		now := base.Add(d)
		got := get(t, s, now, ids...)
		for i, id := range ids {
			if want := ref.stats(id, now); got[i] != want {
				t.Errorf("now base+%v, %s:\n got %+v\nwant %+v", d, id, got[i], want)
			}
		}
	}
}

func testReference(t *testing.T, inOrder, shuffled feature.Store) {
	rng := rand.New(rand.NewPCG(1, 2))
	videos := []string{"v0", "v1", "v2", "v3", "v4", "v5"}
	events := randomEvents(rng, 1200, videos, "r")
	var ref reference
	ref.add(events...)

	applyBatches := func(s feature.Store, events []event.Event, size int) int {
		total := 0
		for len(events) > 0 {
			n := min(size, len(events))
			total += apply(t, s, events[:n]...)
			events = events[n:]
		}
		return total
	}
	if n := applyBatches(inOrder, events, 100); n != len(ref.events) {
		t.Errorf("in order: applied %d, want %d", n, len(ref.events))
	}
	mixed := append([]event.Event{}, events...)
	rng.Shuffle(len(mixed), func(i, j int) { mixed[i], mixed[j] = mixed[j], mixed[i] })
	if n := applyBatches(shuffled, mixed, 37); n != len(ref.events) {
		t.Errorf("shuffled: applied %d, want %d", n, len(ref.events))
	}
	// Replaying everything is a no-op.
	if n := applyBatches(shuffled, events, 500); n != 0 {
		t.Errorf("replay applied %d, want 0", n)
	}
	checkReference(t, inOrder, &ref, videos)
	checkReference(t, shuffled, &ref, videos)
}

func testConcurrent(t *testing.T, s feature.Store) {
	const writers, batches, batchSize = 4, 8, 50
	videos := []string{"c0", "c1", "c2", "c3", "c4", "c5", "c6", "c7"}
	work := make([][]event.Event, writers)
	var ref reference
	for w := range work {
		rng := rand.New(rand.NewPCG(uint64(w), 7))
		work[w] = randomEvents(rng, batches*batchSize, videos, fmt.Sprintf("w%d-", w))
		ref.add(work[w]...)
	}
	// Every writer also sends its neighbour's first batch: concurrent
	// duplicates must still be applied once.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	var readErr error
	var readMu sync.Mutex
	for r := 0; r < 2; r++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				if _, err := s.Get(ctx, nil, videos, base); err != nil && ctx.Err() == nil {
					readMu.Lock()
					readErr = err
					readMu.Unlock()
					return
				}
			}
		}()
	}
	applied := make([]int, writers)
	errs := make([]error, writers)
	var writersWG sync.WaitGroup
	for w := 0; w < writers; w++ {
		writersWG.Add(1)
		go func() {
			defer writersWG.Done()
			mine := work[w]
			theirs := work[(w+1)%writers][:batchSize]
			for b := 0; b < batches; b++ {
				n, err := s.Apply(context.Background(), mine[b*batchSize:(b+1)*batchSize])
				if err != nil {
					errs[w] = err
					return
				}
				applied[w] += n
				if b == batches/2 {
					n, err = s.Apply(context.Background(), theirs)
					if err != nil {
						errs[w] = err
						return
					}
					applied[w] += n
				}
			}
		}()
	}
	writersWG.Wait()
	cancel()
	wg.Wait()
	total := 0
	for w := range errs {
		if errs[w] != nil {
			t.Fatalf("writer %d: %v", w, errs[w])
		}
		total += applied[w]
	}
	if readErr != nil {
		t.Fatalf("reader: %v", readErr)
	}
	if total != len(ref.events) {
		t.Errorf("applied %d in total, want %d", total, len(ref.events))
	}
	checkReference(t, s, &ref, videos)
}

// testAppendsToDst: Get appends after what dst holds, leaves it intact, and
// zeroes reused capacity for unknown videos (callers pool dst).
func testAppendsToDst(t *testing.T, s feature.Store) {
	apply(t, s, ev("a1", "a", base), ev("a2", "a", base))
	dirty := feature.Stats{VideoID: "stale", Lifetime: plays(99)}
	dst := make([]feature.Stats, 1, 8)
	dst[0] = feature.Stats{VideoID: "kept", Lifetime: plays(7)}
	backing := dst[:cap(dst)]
	for i := 1; i < len(backing); i++ {
		backing[i] = dirty
	}
	got, err := s.Get(context.Background(), dst, []string{"a", "unknown"}, base)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 {
		t.Fatalf("got %d stats, want the kept one plus 2", len(got))
	}
	if got[0].VideoID != "kept" || got[0].Lifetime != plays(7) {
		t.Fatalf("dst's element changed: %+v", got[0])
	}
	if got[1].VideoID != "a" || got[1].Lifetime != plays(2) {
		t.Fatalf("a: %+v", got[1])
	}
	if got[2].VideoID != "unknown" || got[2] != (feature.Stats{VideoID: "unknown"}) {
		t.Fatalf("unknown video must read as zero counters, got %+v", got[2])
	}
}
