// Package storetest is the conformance suite every profile.Store backend
// must pass, plus the shared workload its benchmarks run, so the backends
// are held to the same observable behaviour and measured the same way.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"reelfeed/event"
	"reelfeed/profile"
)

// NewStore builds an empty store with cfg for one test; the store must be
// isolated from every other store the suite builds.
type NewStore func(t *testing.T, cfg profile.Config) profile.Store

// Run runs the conformance suite against stores built by newStore.
func Run(t *testing.T, newStore NewStore) {
	tests := []struct {
		name string
		fn   func(*testing.T, NewStore)
	}{
		{"WeightsOrder", testWeightsOrder},
		{"InterestKinds", testInterestKinds},
		{"DuplicatesAppliedOnce", testDuplicates},
		{"OutOfOrderSameResult", testOutOfOrder},
		{"DecayByEventTime", testDecay},
		{"InterestsBounded", testInterestsBounded},
		{"PlayedPositiveShown", testSets},
		{"SetsBoundedNewestKept", testSetsBounded},
		{"SetsExpire", testSetsExpire},
		{"Counts", testCounts},
		{"UnknownUser", testUnknownUser},
		{"InvalidBatchRejected", testInvalid},
		{"ConcurrentApplyGet", testConcurrent},
		{"Prune", testPrune},
		{"PruneFloor", testPruneFloor},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, newStore) })
	}
}

// base is a recent whole-millisecond time: stores keep millisecond
// precision, and Redis expires keys by the wall clock, so test events must
// be near it.
func base() time.Time { return time.Now().UTC().Truncate(time.Millisecond) }

type eventOpt func(*event.Event)

func tags(ts ...string) eventOpt { return func(e *event.Event) { e.Tags = ts } }
func category(c string) eventOpt { return func(e *event.Event) { e.Category = c } }
func uploader(u string) eventOpt { return func(e *event.Event) { e.UploaderID = u } }
func video(v string) eventOpt    { return func(e *event.Event) { e.VideoID = v } }
func id(s string) eventOpt       { return func(e *event.Event) { e.ID = s } }
func bare() eventOpt             { return func(e *event.Event) { e.VideoID = "" } }
func ev(user string, typ event.Type, ts time.Time, opts ...eventOpt) event.Event {
	e := event.Event{
		ID:      fmt.Sprintf("%s-%s-%d", user, typ, ts.UnixNano()),
		UserID:  user,
		VideoID: "v-" + user,
		Type:    typ,
		TS:      ts,
	}
	for _, o := range opts {
		o(&e)
	}
	return e
}

func apply(t *testing.T, s profile.Store, events ...event.Event) int {
	t.Helper()
	n, err := s.Apply(context.Background(), events)
	if err != nil {
		t.Fatalf("Apply: %v", err)
	}
	return n
}

func get(t *testing.T, s profile.Store, user string, now time.Time) *profile.Profile {
	t.Helper()
	p, err := s.Get(context.Background(), user, now)
	if err != nil {
		t.Fatalf("Get(%q): %v", user, err)
	}
	if p == nil {
		t.Fatalf("Get(%q) returned nil profile", user)
	}
	return p
}

func near(a, b float64) bool {
	return math.Abs(a-b) <= 1e-9*math.Max(1, math.Max(math.Abs(a), math.Abs(b)))
}

func wantValue(t *testing.T, what string, m map[string]float64, key string, want float64) {
	t.Helper()
	got, ok := m[key]
	if !ok {
		t.Errorf("%s[%q] missing, want %g (have %v)", what, key, want, m)
		return
	}
	if !near(got, want) {
		t.Errorf("%s[%q] = %.12g, want %.12g", what, key, got, want)
	}
}

func wantAbsent(t *testing.T, what string, m map[string]float64, key string) {
	t.Helper()
	if v, ok := m[key]; ok {
		t.Errorf("%s[%q] = %g, want absent", what, key, v)
	}
}

func testWeightsOrder(t *testing.T, newStore NewStore) {
	cfg := profile.DefaultConfig()
	s := newStore(t, cfg)
	now := base()
	got := map[event.Type]float64{}
	for _, typ := range event.Types() {
		user := "w-" + typ.String()
		apply(t, s, ev(user, typ, now, tags("x")))
		p := get(t, s, user, now)
		wantValue(t, "short tags", p.ShortTerm.Tags, "x", cfg.Weights[typ])
		wantValue(t, "long tags", p.LongTerm.Tags, "x", cfg.Weights[typ])
		got[typ] = p.LongTerm.Tags["x"]
	}
	order := []event.Type{event.Complete, event.Like, event.Comment, event.Share, event.Play, event.Impression}
	for i := 1; i < len(order); i++ {
		if !(got[order[i-1]] > got[order[i]]) {
			t.Errorf("%s (%g) should outweigh %s (%g)", order[i-1], got[order[i-1]], order[i], got[order[i]])
		}
	}
	if got[event.Impression] <= 0 {
		t.Errorf("impression weight %g, want positive", got[event.Impression])
	}
	for _, neg := range []event.Type{event.Skip, event.Dislike} {
		if got[neg] >= 0 {
			t.Errorf("%s weight %g, want negative", neg, got[neg])
		}
	}
}

func testInterestKinds(t *testing.T, newStore NewStore) {
	cfg := profile.DefaultConfig()
	s := newStore(t, cfg)
	now := base()
	apply(t, s,
		ev("k", event.Like, now, tags("cats", "funny", "cats", ""), category("pets"), uploader("alice")),
		ev("k", event.Follow, now, category("pets"), uploader("bob")),
	)
	p := get(t, s, "k", now)
	like, follow := cfg.Weights[event.Like], cfg.Weights[event.Follow]
	for _, term := range []struct {
		name string
		in   profile.Interests
	}{{"short", p.ShortTerm}, {"long", p.LongTerm}} {
		if len(term.in.Tags) != 2 {
			t.Errorf("%s tags = %v, want cats and funny (a repeated tag counts once)", term.name, term.in.Tags)
		}
		wantValue(t, term.name+" tags", term.in.Tags, "cats", like)
		wantValue(t, term.name+" tags", term.in.Tags, "funny", like)
		wantValue(t, term.name+" categories", term.in.Categories, "pets", like+follow)
		wantValue(t, term.name+" uploaders", term.in.Uploaders, "alice", like)
		wantValue(t, term.name+" uploaders", term.in.Uploaders, "bob", follow)
	}
}

func testDuplicates(t *testing.T, newStore NewStore) {
	s := newStore(t, profile.DefaultConfig())
	now := base()
	first := ev("d", event.Like, now, tags("a"), video("v1"))
	if n := apply(t, s, first, first, ev("d", event.Play, now, tags("a")), first); n != 2 {
		t.Errorf("batch with a repeated event: applied %d, want 2", n)
	}
	before := get(t, s, "d", now)

	var later []event.Event
	for i := range 300 {
		later = append(later, ev("d", event.Impression, now.Add(time.Duration(i)*time.Millisecond), id(fmt.Sprintf("imp-%d", i)), tags("b"), video(fmt.Sprintf("s%d", i))))
	}
	if n := apply(t, s, later...); n != len(later) {
		t.Fatalf("applied %d of %d fresh events", n, len(later))
	}
	mid := get(t, s, "d", now)
	if n := apply(t, s, first, later[0], later[299]); n != 0 {
		t.Errorf("re-applying old events: applied %d, want 0", n)
	}
	after := get(t, s, "d", now)
	sameProfile(t, mid, after)
	if got := after.Counts[event.Like]; got != 1 {
		t.Errorf("like count %d after redelivery, want 1", got)
	}
	if got := after.Counts[event.Impression]; got != 300 {
		t.Errorf("impression count %d, want 300", got)
	}
	wantValue(t, "long tags", after.LongTerm.Tags, "a", before.LongTerm.Tags["a"])
}

// sameProfile compares two reads of equivalent state.
func sameProfile(t *testing.T, a, b *profile.Profile) {
	t.Helper()
	if a.Counts != b.Counts {
		t.Errorf("counts differ: %v vs %v", a.Counts.Map(), b.Counts.Map())
	}
	if !a.LastEvent.Equal(b.LastEvent) {
		t.Errorf("last event differs: %v vs %v", a.LastEvent, b.LastEvent)
	}
	for _, m := range []struct {
		name string
		a, b map[string]float64
	}{
		{"short tags", a.ShortTerm.Tags, b.ShortTerm.Tags}, {"short categories", a.ShortTerm.Categories, b.ShortTerm.Categories},
		{"short uploaders", a.ShortTerm.Uploaders, b.ShortTerm.Uploaders}, {"long tags", a.LongTerm.Tags, b.LongTerm.Tags},
		{"long categories", a.LongTerm.Categories, b.LongTerm.Categories}, {"long uploaders", a.LongTerm.Uploaders, b.LongTerm.Uploaders},
	} {
		if len(m.a) != len(m.b) {
			t.Errorf("%s: %d vs %d entries: %v vs %v", m.name, len(m.a), len(m.b), m.a, m.b)
			continue
		}
		for k, v := range m.a {
			wantValue(t, m.name, m.b, k, v)
		}
	}
	for _, m := range []struct {
		name string
		a, b map[string]time.Time
	}{{"played", a.Played, b.Played}, {"positive", a.Positive, b.Positive}, {"shown", a.Shown, b.Shown}} {
		if len(m.a) != len(m.b) {
			t.Errorf("%s: %d vs %d entries", m.name, len(m.a), len(m.b))
			continue
		}
		for k, v := range m.a {
			if w, ok := m.b[k]; !ok || !w.Equal(v) {
				t.Errorf("%s[%q]: %v vs %v", m.name, k, v, w)
			}
		}
	}
}

func testOutOfOrder(t *testing.T, newStore NewStore) {
	s := newStore(t, profile.DefaultConfig())
	now := base()
	rng := rand.New(rand.NewPCG(1, 2))
	vocab := []string{"a", "b", "c", "d", "e"}
	var inOrder []event.Event
	for i := range 80 {
		ts := now.Add(-3 * time.Hour).Add(time.Duration(i) * 2 * time.Minute)
		typ := event.Type(rng.IntN(int(event.NumTypes)))
		inOrder = append(inOrder, ev("ordered", typ, ts,
			id(fmt.Sprintf("o-%d", i)),
			tags(vocab[rng.IntN(len(vocab))], vocab[rng.IntN(len(vocab))]),
			category(vocab[rng.IntN(2)]), uploader(vocab[rng.IntN(3)]),
			video(fmt.Sprintf("v%d", rng.IntN(30)))))
	}
	shuffled := slices.Clone(inOrder)
	for i := range shuffled {
		shuffled[i].UserID = "shuffled"
	}
	rng.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })

	apply(t, s, inOrder...)
	for chunk := range slices.Chunk(shuffled, 27) {
		apply(t, s, chunk...)
	}
	a, b := get(t, s, "ordered", now), get(t, s, "shuffled", now)
	if len(a.ShortTerm.Tags) == 0 || len(a.LongTerm.Tags) == 0 || len(a.Played) == 0 || len(a.Shown) == 0 {
		t.Fatalf("workload too thin to compare: %+v", a)
	}
	sameProfile(t, a, b)
}

func testDecay(t *testing.T, newStore NewStore) {
	cfg := profile.DefaultConfig()
	s := newStore(t, cfg)
	now := base()
	like, complete := cfg.Weights[event.Like], cfg.Weights[event.Complete]
	longFactor := func(age time.Duration) float64 { return math.Pow(2, -float64(age)/float64(cfg.LongHalfLife)) }

	twoHalfLives := 2 * cfg.ShortHalfLife
	apply(t, s,
		// Applied newest first: the late arrival must still count by its own time.
		ev("decay", event.Complete, now, id("d1"), tags("recent")),
		ev("decay", event.Like, now.Add(-cfg.ShortHalfLife), id("d2"), tags("recent")),
		ev("decay", event.Like, now.Add(-twoHalfLives), id("d3"), tags("quarter")),
		ev("decay", event.Like, now.Add(-cfg.ShortWindow-time.Minute), id("d4"), tags("past-hour")),
		ev("decay", event.Like, now.Add(-cfg.LongWindow-time.Hour), id("d5"), tags("ancient")),
	)
	p := get(t, s, "decay", now)
	wantValue(t, "short tags", p.ShortTerm.Tags, "quarter", like/4)
	wantValue(t, "long tags", p.LongTerm.Tags, "quarter", like*longFactor(twoHalfLives))
	wantValue(t, "short tags", p.ShortTerm.Tags, "recent", complete+like/2)
	wantValue(t, "long tags", p.LongTerm.Tags, "recent", complete+like*longFactor(cfg.ShortHalfLife))
	wantAbsent(t, "short tags", p.ShortTerm.Tags, "past-hour")
	wantValue(t, "long tags", p.LongTerm.Tags, "past-hour", like*longFactor(cfg.ShortWindow+time.Minute))
	wantAbsent(t, "short tags", p.ShortTerm.Tags, "ancient")
	wantAbsent(t, "long tags", p.LongTerm.Tags, "ancient")

	later := get(t, s, "decay", now.Add(cfg.ShortHalfLife))
	wantValue(t, "short tags an half-life later", later.ShortTerm.Tags, "recent", (complete+like/2)/2)
	wantValue(t, "short tags an half-life later", later.ShortTerm.Tags, "quarter", like/8)

	if !p.LastEvent.Equal(now) {
		t.Errorf("LastEvent = %v, want the newest event time %v", p.LastEvent, now)
	}
}

func testInterestsBounded(t *testing.T, newStore NewStore) {
	cfg := profile.DefaultConfig()
	cfg.MaxInterests = 4
	s := newStore(t, cfg)
	now := base()
	var evs []event.Event
	for i := range 14 {
		evs = append(evs, ev("cap", event.Like, now.Add(time.Duration(i)*time.Minute), id(fmt.Sprintf("c%d", i)),
			tags(fmt.Sprintf("t%02d", i)), uploader(fmt.Sprintf("u%02d", i)), bare()))
	}
	// An older but much stronger interest must survive eviction of weak ones.
	for i := range 3 {
		evs = append(evs, ev("cap", event.Complete, now.Add(-time.Duration(i+1)*time.Minute), id(fmt.Sprintf("fav%d", i)), tags("fav"), bare()))
	}
	rand.New(rand.NewPCG(3, 4)).Shuffle(len(evs), func(i, j int) { evs[i], evs[j] = evs[j], evs[i] })
	for chunk := range slices.Chunk(evs, 5) {
		apply(t, s, chunk...)
	}
	p := get(t, s, "cap", now.Add(14*time.Minute))
	wantTags := []string{"fav", "t11", "t12", "t13"}
	for _, term := range []struct {
		name string
		m    map[string]float64
	}{{"short tags", p.ShortTerm.Tags}, {"long tags", p.LongTerm.Tags}} {
		if got := slices.Sorted(keys(term.m)); !slices.Equal(got, wantTags) {
			t.Errorf("%s = %v, want the strongest %v", term.name, got, wantTags)
		}
	}
	if got, want := slices.Sorted(keys(p.LongTerm.Uploaders)), []string{"u10", "u11", "u12", "u13"}; !slices.Equal(got, want) {
		t.Errorf("long uploaders = %v, want %v (bounded per kind)", got, want)
	}
}

func keys[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

func testSets(t *testing.T, newStore NewStore) {
	s := newStore(t, profile.DefaultConfig())
	now := base()
	at := func(i int) time.Time { return now.Add(time.Duration(i) * time.Second) }
	apply(t, s,
		ev("sets", event.Complete, at(1), video("complete")),
		ev("sets", event.Like, at(2), video("like")),
		ev("sets", event.Comment, at(3), video("comment")),
		ev("sets", event.Share, at(4), video("share")),
		ev("sets", event.Skip, at(5), video("skip")),
		ev("sets", event.Dislike, at(6), video("dislike")),
		ev("sets", event.Play, at(7), video("play")),
		ev("sets", event.Follow, at(8), video("follow")),
		ev("sets", event.Impression, at(10), video("shown")),
		ev("sets", event.Impression, at(9), video("shown")),
		ev("sets", event.Impression, at(11), video("like")),
	)
	p := get(t, s, "sets", at(20))
	wantTimes(t, "played", p.Played, map[string]time.Time{
		"complete": at(1), "like": at(2), "comment": at(3), "share": at(4), "skip": at(5), "dislike": at(6),
	})
	wantTimes(t, "positive", p.Positive, map[string]time.Time{
		"complete": at(1), "like": at(2), "comment": at(3), "share": at(4),
	})
	wantTimes(t, "shown", p.Shown, map[string]time.Time{"shown": at(10), "like": at(11)})
}

func wantTimes(t *testing.T, what string, got, want map[string]time.Time) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s = %v, want %v", what, got, want)
		return
	}
	for k, w := range want {
		if g, ok := got[k]; !ok || !g.Equal(w) {
			t.Errorf("%s[%q] = %v, want %v", what, k, g, w)
		}
	}
}

func testSetsBounded(t *testing.T, newStore NewStore) {
	cfg := profile.DefaultConfig()
	cfg.MaxPlayed, cfg.MaxShown = 3, 5
	s := newStore(t, cfg)
	now := base()
	var evs []event.Event
	for i := range 12 {
		ts := now.Add(time.Duration(i) * time.Second)
		evs = append(evs,
			ev("bounded", event.Complete, ts, id(fmt.Sprintf("p%d", i)), video(fmt.Sprintf("p%02d", i))),
			ev("bounded", event.Impression, ts, id(fmt.Sprintf("s%d", i)), video(fmt.Sprintf("s%02d", i))))
	}
	rand.New(rand.NewPCG(5, 6)).Shuffle(len(evs), func(i, j int) { evs[i], evs[j] = evs[j], evs[i] })
	for chunk := range slices.Chunk(evs, 4) {
		apply(t, s, chunk...)
	}
	p := get(t, s, "bounded", now.Add(time.Minute))
	wantPlayed := []string{"p09", "p10", "p11"}
	if got := slices.Sorted(keys(p.Played)); !slices.Equal(got, wantPlayed) {
		t.Errorf("played = %v, want the newest %v", got, wantPlayed)
	}
	if got := slices.Sorted(keys(p.Positive)); !slices.Equal(got, wantPlayed) {
		t.Errorf("positive = %v, want the newest %v", got, wantPlayed)
	}
	if got, want := slices.Sorted(keys(p.Shown)), []string{"s07", "s08", "s09", "s10", "s11"}; !slices.Equal(got, want) {
		t.Errorf("shown = %v, want the newest %v", got, want)
	}
}

func testSetsExpire(t *testing.T, newStore NewStore) {
	cfg := profile.DefaultConfig()
	s := newStore(t, cfg)
	now := base()
	apply(t, s,
		ev("ttl", event.Like, now, video("liked")),
		ev("ttl", event.Impression, now, video("seen")),
	)
	p := get(t, s, "ttl", now.Add(cfg.ShownTTL))
	if _, ok := p.Shown["seen"]; !ok {
		t.Errorf("shown entry gone exactly at ShownTTL, want kept until after it")
	}
	p = get(t, s, "ttl", now.Add(cfg.ShownTTL+time.Second))
	if len(p.Shown) != 0 {
		t.Errorf("shown = %v after ShownTTL, want empty", p.Shown)
	}
	if _, ok := p.Played["liked"]; !ok {
		t.Errorf("played entry gone before PlayedTTL")
	}
	p = get(t, s, "ttl", now.Add(cfg.PlayedTTL+time.Second))
	if len(p.Played) != 0 || len(p.Positive) != 0 {
		t.Errorf("played = %v, positive = %v after PlayedTTL, want empty", p.Played, p.Positive)
	}
}

func testCounts(t *testing.T, newStore NewStore) {
	s := newStore(t, profile.DefaultConfig())
	now := base()
	var evs []event.Event
	want := event.Counts{}
	for i, typ := range []event.Type{event.Impression, event.Impression, event.Play, event.Complete, event.Skip, event.Follow, event.Impression} {
		// Events without tags, category or uploader still count.
		evs = append(evs, ev("counts", typ, now.Add(-time.Duration(i)*time.Minute), bare()))
		want[typ]++
	}
	if n := apply(t, s, evs...); n != len(evs) {
		t.Errorf("applied %d, want %d", n, len(evs))
	}
	p := get(t, s, "counts", now)
	if p.Counts != want {
		t.Errorf("counts = %v, want %v", p.Counts.Map(), want.Map())
	}
	if !p.LastEvent.Equal(now) {
		t.Errorf("LastEvent = %v, want %v", p.LastEvent, now)
	}
	if n := len(p.LongTerm.Tags) + len(p.LongTerm.Categories) + len(p.LongTerm.Uploaders); n != 0 {
		t.Errorf("interests from events without metadata: %+v", p.LongTerm)
	}
}

func testUnknownUser(t *testing.T, newStore NewStore) {
	s := newStore(t, profile.DefaultConfig())
	p := get(t, s, "nobody", base())
	if p.UserID != "nobody" {
		t.Errorf("UserID = %q", p.UserID)
	}
	for name, nilMap := range map[string]bool{
		"short tags": p.ShortTerm.Tags == nil, "short categories": p.ShortTerm.Categories == nil,
		"short uploaders": p.ShortTerm.Uploaders == nil, "long tags": p.LongTerm.Tags == nil,
		"long categories": p.LongTerm.Categories == nil, "long uploaders": p.LongTerm.Uploaders == nil,
		"played": p.Played == nil, "positive": p.Positive == nil, "shown": p.Shown == nil,
	} {
		if nilMap {
			t.Errorf("%s is nil, want an empty map", name)
		}
	}
	if p.Counts.Total() != 0 || !p.LastEvent.IsZero() || len(p.Played)+len(p.Shown)+len(p.LongTerm.Tags) != 0 {
		t.Errorf("unknown user has state: %+v", p)
	}
	if err := s.Ping(context.Background()); err != nil {
		t.Errorf("Ping: %v", err)
	}
}

func testInvalid(t *testing.T, newStore NewStore) {
	s := newStore(t, profile.DefaultConfig())
	now := base()
	good := ev("inv", event.Like, now, tags("a"))
	for name, bad := range map[string]event.Event{
		"no user": {ID: "x", Type: event.Like, TS: now},
		"no id":   {UserID: "inv", Type: event.Like, TS: now},
		"type":    {ID: "x", UserID: "inv", Type: event.NumTypes, TS: now},
		"no time": {ID: "x", UserID: "inv", Type: event.Like},
	} {
		n, err := s.Apply(context.Background(), []event.Event{good, bad})
		if !errors.Is(err, profile.ErrInvalidEvent) {
			t.Errorf("%s: err = %v, want ErrInvalidEvent", name, err)
		}
		if n != 0 {
			t.Errorf("%s: applied %d, want 0", name, n)
		}
	}
	if p := get(t, s, "inv", now); p.Counts.Total() != 0 {
		t.Errorf("a rejected batch was partly applied: %v", p.Counts.Map())
	}
	if n := apply(t, s); n != 0 {
		t.Errorf("empty batch applied %d", n)
	}
}

func testConcurrent(t *testing.T, newStore NewStore) {
	s := newStore(t, profile.DefaultConfig())
	now := base()
	const writers, batches, perBatch, users = 4, 15, 40, 12
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, writers+4)
	for w := range writers {
		wg.Go(func() {
			for b := range batches {
				evs := make([]event.Event, perBatch)
				for i := range evs {
					n := (w*batches+b)*perBatch + i
					evs[i] = ev(fmt.Sprintf("c%d", n%users), event.Type(n%int(event.NumTypes)), now.Add(-time.Duration(n)*time.Second),
						id(fmt.Sprintf("ce-%d", n)), tags("x", fmt.Sprintf("t%d", n%7)), video(fmt.Sprintf("v%d", n%50)))
				}
				if _, err := s.Apply(ctx, evs); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	var readers sync.WaitGroup
	for r := range 4 {
		readers.Go(func() {
			for i := 0; ctx.Err() == nil; i++ {
				if _, err := s.Get(ctx, fmt.Sprintf("c%d", (r+i)%users), now); err != nil && ctx.Err() == nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	cancel()
	readers.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	var total int64
	for u := range users {
		total += get(t, s, fmt.Sprintf("c%d", u), now).Counts.Total()
	}
	if want := int64(writers * batches * perBatch); total != want {
		t.Errorf("counts sum to %d, want %d", total, want)
	}
}

func testPrune(t *testing.T, newStore NewStore) {
	cfg := profile.DefaultConfig()
	s := newStore(t, cfg)
	ctx := context.Background()
	now := base()
	evs := []event.Event{
		ev("p1", event.Like, now, tags("a"), video("liked")),
		ev("p1", event.Impression, now, tags("b"), video("seen")),
		ev("p2", event.Complete, now, tags("c"), video("done")),
	}
	apply(t, s, evs...)
	before := get(t, s, "p1", now.Add(time.Minute))

	if n, err := s.Prune(ctx, now.Add(time.Minute)); err != nil || n != 2 {
		t.Fatalf("Prune = %d, %v; want 2 users visited", n, err)
	}
	sameProfile(t, before, get(t, s, "p1", now.Add(time.Minute)))

	// Past the shown and dedupe TTLs: shown entries and dedupe marks are
	// gone for good (even read as of an earlier time), played ones stay.
	week := now.Add(cfg.DedupeTTL + cfg.ShownTTL + time.Hour)
	if _, err := s.Prune(ctx, week); err != nil {
		t.Fatal(err)
	}
	p := get(t, s, "p1", now)
	if len(p.Shown) != 0 {
		t.Errorf("shown = %v after prune past ShownTTL", p.Shown)
	}
	if _, ok := p.Played["liked"]; !ok {
		t.Errorf("played entry pruned before PlayedTTL")
	}
	wantValue(t, "long tags", p.LongTerm.Tags, "a", cfg.Weights[event.Like])
	if n := apply(t, s, evs[0]); n != 1 {
		t.Errorf("event older than DedupeTTL re-applied %d times after prune, want 1 (its mark expired)", n)
	}

	// Past every window: the users are forgotten.
	gone := week.Add(cfg.LongWindow + cfg.PlayedTTL)
	if _, err := s.Prune(ctx, gone); err != nil {
		t.Fatal(err)
	}
	for _, u := range []string{"p1", "p2"} {
		if p := get(t, s, u, now); p.Counts.Total() != 0 || len(p.Played) != 0 || len(p.LongTerm.Tags) != 0 {
			t.Errorf("%s still has state after retention: %+v", u, p)
		}
	}
	if n, err := s.Prune(ctx, gone); err != nil || n != 0 {
		t.Errorf("Prune after users expired = %d, %v; want 0", n, err)
	}
}

func testPruneFloor(t *testing.T, newStore NewStore) {
	cfg := profile.DefaultConfig()
	cfg.LongHalfLife = time.Hour
	s := newStore(t, cfg)
	now := base()
	apply(t, s,
		ev("floor", event.Impression, now, tags("faint")),
		ev("floor", event.Like, now, tags("strong")),
	)
	// Six half-lives: the impression (0.05/64) is below the floor, the
	// like (3/64) is not.
	later := now.Add(6 * time.Hour)
	p := get(t, s, "floor", later)
	wantAbsent(t, "long tags", p.LongTerm.Tags, "faint")
	wantValue(t, "long tags", p.LongTerm.Tags, "strong", cfg.Weights[event.Like]/64)
	if _, err := s.Prune(context.Background(), later); err != nil {
		t.Fatal(err)
	}
	p = get(t, s, "floor", now)
	wantAbsent(t, "long tags after prune, read as of the event time", p.LongTerm.Tags, "faint")
	wantValue(t, "long tags after prune, read as of the event time", p.LongTerm.Tags, "strong", cfg.Weights[event.Like])
}
