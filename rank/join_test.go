package rank

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"reelfeed/event"
)

var joinT0 = time.Date(2026, 4, 1, 10, 0, 0, 0, time.UTC)

func imp(user, video string, at time.Duration) event.Event {
	return event.Event{UserID: user, VideoID: video, Type: event.Impression, TS: joinT0.Add(at), RequestID: "r1",
		Features: json.RawMessage(fmt.Sprintf(`{"v":1,"user":%q,"video":%q}`, user, video))}
}

func act(user, video string, typ event.Type, at time.Duration) event.Event {
	return event.Event{UserID: user, VideoID: video, Type: typ, TS: joinT0.Add(at)}
}

func TestJoinerLabels(t *testing.T) {
	type want struct {
		video  string
		label  float32
		reason string
	}
	cases := []struct {
		name   string
		events []event.Event
		flush  time.Duration
		want   []want
	}{
		{"complete is positive", []event.Event{imp("u", "a", 0), act("u", "a", event.Play, time.Second), act("u", "a", event.Complete, 20*time.Second)},
			time.Minute, []want{{"a", 1, "complete"}}},
		{"like is positive", []event.Event{imp("u", "a", 0), act("u", "a", event.Like, time.Minute)},
			time.Minute, []want{{"a", 1, "like"}}},
		{"skip is negative", []event.Event{imp("u", "a", 0), act("u", "a", event.Skip, time.Second)},
			time.Minute, []want{{"a", 0, "skip"}}},
		{"dislike is negative", []event.Event{imp("u", "a", 0), act("u", "a", event.Dislike, time.Second)},
			time.Minute, []want{{"a", 0, "dislike"}}},
		{"nothing within the window is negative once it closes", []event.Event{imp("u", "a", 0), act("u", "a", event.Play, time.Second)},
			31 * time.Minute, []want{{"a", 0, ReasonTimeout}}},
		{"still open before the window closes", []event.Event{imp("u", "a", 0)},
			29 * time.Minute, nil},
		{"a complete after the window does not count", []event.Event{imp("u", "a", 0), act("u", "a", event.Complete, 31*time.Minute)},
			62 * time.Minute, []want{{"a", 0, ReasonTimeout}}},
		{"another user's complete does not count", []event.Event{imp("u", "a", 0), act("w", "a", event.Complete, time.Second)},
			31 * time.Minute, []want{{"a", 0, ReasonTimeout}}},
		{"first label wins", []event.Event{imp("u", "a", 0), act("u", "a", event.Complete, time.Second), act("u", "a", event.Skip, 2*time.Second)},
			time.Hour, []want{{"a", 1, "complete"}}},
		{"impression without features is not joinable", []event.Event{{UserID: "u", VideoID: "a", Type: event.Impression, TS: joinT0}, act("u", "a", event.Complete, time.Second)},
			time.Hour, nil},
		{"shown again: the earlier showing is negative, the new one is labelled", []event.Event{imp("u", "a", 0), imp("u", "a", time.Minute), act("u", "a", event.Like, 2*time.Minute)},
			time.Hour, []want{{"a", 0, ReasonTimeout}, {"a", 1, "like"}}},
		{"several videos", []event.Event{imp("u", "a", 0), imp("u", "b", 0), imp("u", "c", 0), act("u", "b", event.Complete, time.Minute)},
			time.Hour, []want{{"b", 1, "complete"}, {"a", 0, ReasonTimeout}, {"c", 0, ReasonTimeout}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			j, err := NewJoiner(DefaultJoinConfig())
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range c.events {
				j.Observe(e)
			}
			got := j.Flush(joinT0.Add(c.flush))
			if len(got) != len(c.want) {
				t.Fatalf("got %d samples %+v, want %d", len(got), got, len(c.want))
			}
			for i, w := range c.want {
				g := got[i]
				if g.VideoID != w.video || g.Label != w.label || g.Reason != w.reason || g.UserID != "u" {
					t.Errorf("sample %d = %s/%s label %v (%s), want %s label %v (%s)", i, g.UserID, g.VideoID, g.Label, g.Reason, w.video, w.label, w.reason)
				}
				if !json.Valid(g.Features) || g.RequestID != "r1" {
					t.Errorf("sample %d lost its impression data: %+v", i, g)
				}
			}
			if again := j.Flush(joinT0.Add(c.flush)); len(again) != 0 {
				t.Errorf("second flush returned %d samples again", len(again))
			}
		})
	}
}

func TestJoinerConfigurableTypes(t *testing.T) {
	cfg := DefaultJoinConfig()
	cfg.Positive = []event.Type{event.Play}
	cfg.Negative = nil
	cfg.Window = time.Minute
	j, err := NewJoiner(cfg)
	if err != nil {
		t.Fatal(err)
	}
	j.Observe(imp("u", "a", 0))
	j.Observe(act("u", "a", event.Play, time.Second))
	j.Observe(imp("u", "b", 0))
	j.Observe(act("u", "b", event.Skip, time.Second)) // not a labelling type now
	got := j.Flush(joinT0.Add(2 * time.Minute))
	if len(got) != 2 || got[0].Label != 1 || got[0].Reason != "play" || got[1].Label != 0 || got[1].Reason != ReasonTimeout {
		t.Errorf("samples = %+v", got)
	}
}

func TestJoinerRejectsBadConfig(t *testing.T) {
	bad := []func(*JoinConfig){
		func(c *JoinConfig) { c.Window = 0 },
		func(c *JoinConfig) { c.Positive = nil },
		func(c *JoinConfig) { c.MaxPending = 0 },
		func(c *JoinConfig) { c.Negative = []event.Type{event.Complete} },
		func(c *JoinConfig) { c.Positive = []event.Type{event.Impression} },
	}
	for i, mutate := range bad {
		c := DefaultJoinConfig()
		mutate(&c)
		if _, err := NewJoiner(c); err == nil {
			t.Errorf("case %d: bad config accepted", i)
		}
	}
}

func TestJoinerBoundsMemory(t *testing.T) {
	cfg := DefaultJoinConfig()
	cfg.MaxPending = 100
	j, _ := NewJoiner(cfg)
	for i := range 1000 {
		j.Observe(imp("u", fmt.Sprint(i), time.Duration(i)*time.Millisecond))
	}
	st := j.Stats()
	if st.Pending != 100 || st.Dropped != 900 {
		t.Fatalf("stats = %+v, want 100 pending and 900 dropped", st)
	}
	// The newest survive.
	j.Observe(act("u", "999", event.Complete, time.Second))
	j.Observe(act("u", "0", event.Complete, time.Second))
	got := j.Flush(joinT0)
	if len(got) != 1 || got[0].VideoID != "999" {
		t.Fatalf("samples = %+v, want the newest impression labelled", got)
	}
	// Labelled samples waiting for Flush are bounded too.
	for i := range 1000 {
		v := fmt.Sprint("p", i)
		j.Observe(imp("u", v, time.Hour))
		j.Observe(act("u", v, event.Like, time.Hour+time.Second))
	}
	if got := j.Flush(joinT0); len(got) != 100 {
		t.Fatalf("flush returned %d samples, want the newest 100", len(got))
	} else if got[99].VideoID != "p999" {
		t.Fatalf("last sample %s, want p999", got[99].VideoID)
	}
	if len(j.queue) > 3*cfg.MaxPending+1024 {
		t.Errorf("queue holds %d entries for %d pending", len(j.queue), j.Stats().Pending)
	}
}

func TestJoinerQueueStaysProportional(t *testing.T) {
	j, _ := NewJoiner(DefaultJoinConfig())
	for i := range 20000 {
		v := fmt.Sprint(i)
		j.Observe(imp("u", v, 0))
		j.Observe(act("u", v, event.Complete, time.Second))
	}
	if n := len(j.queue) - j.head; n > 2048 {
		t.Errorf("queue holds %d closed entries with nothing pending", n)
	}
	if got := j.Flush(joinT0); len(got) != 20000 {
		t.Errorf("flush returned %d samples, want 20000", len(got))
	}
}

func TestJoinerWatermark(t *testing.T) {
	j, _ := NewJoiner(DefaultJoinConfig())
	j.Observe(imp("u", "a", time.Hour))
	j.Observe(act("u", "b", event.Play, time.Minute)) // older event arriving later
	if got := j.Watermark(); !got.Equal(joinT0.Add(time.Hour)) {
		t.Errorf("watermark = %v", got)
	}
}

// Impressions travel on their own stream: a label that beats its
// impression to the joiner still labels it.
func TestJoinerLabelBeforeImpression(t *testing.T) {
	j, err := NewJoiner(DefaultJoinConfig())
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	j.Observe(event.Event{UserID: "u", VideoID: "v", Type: event.Complete, TS: now})
	j.Observe(event.Event{UserID: "u", VideoID: "w", Type: event.Skip, TS: now})
	j.Observe(event.Event{UserID: "u", VideoID: "v", Type: event.Impression, TS: now, Features: []byte(`{"v":1}`)})
	j.Observe(event.Event{UserID: "u", VideoID: "w", Type: event.Impression, TS: now, Features: []byte(`{"v":1}`)})
	got := j.Flush(now)
	if len(got) != 2 || got[0].Label != 1 || got[1].Label != 0 {
		t.Fatalf("early labels not joined: %+v", got)
	}
}

// joinFeatures returns valid JSON features of exactly n bytes (n >= 16),
// distinct per seed.
func joinFeatures(seed, n int) json.RawMessage {
	head := fmt.Sprintf(`{"seed":%d,"pad":"`, seed)
	b := []byte(head)
	for len(b) < n-2 {
		b = append(b, 'a'+byte((seed+len(b))%26))
	}
	return append(b, '"', '}')
}

// Samples are rebuilt from the arena: every one must carry exactly the
// bytes of its own impression, wherever in which chunk they were.
func TestJoinerArenaKeepsEachImpressionsBytes(t *testing.T) {
	j, err := NewJoiner(DefaultJoinConfig())
	if err != nil {
		t.Fatal(err)
	}
	plus0530 := time.FixedZone("", 5*3600+30*60)
	zones := []*time.Location{time.UTC, time.Local, time.FixedZone("", 3600), plus0530}
	type obs struct {
		e     event.Event
		label float32
		why   string
	}
	want := map[joinKey]*obs{}
	var order []joinKey
	total := 0
	for i := range 3000 {
		e := event.Event{
			Type:    event.Impression,
			UserID:  fmt.Sprintf("u%d-%s", i%97, strings.Repeat("é", i%5)),
			VideoID: fmt.Sprint("v", i),
			TS:      joinT0.Add(time.Duration(i) * time.Millisecond).In(zones[i%len(zones)]),
			// Sizes from tiny to several KiB, so entries straddle chunk
			// ends at all sorts of offsets.
			Features: joinFeatures(i, 16+(i*7919)%4000),
		}
		if i%4 != 0 {
			e.RequestID = fmt.Sprint("req-", i/10)
		}
		if i == 1500 { // bigger than a chunk: a chunk of its own
			e.Features = joinFeatures(i, joinChunkSize+100)
		}
		total += len(e.Features)
		k := joinKey{e.UserID, e.VideoID}
		want[k] = &obs{e: e, why: ReasonTimeout}
		order = append(order, k)
		j.Observe(e)
	}
	if total < 4*joinChunkSize {
		t.Fatalf("only %d bytes of features: the test wants more than 3 chunks", total)
	}
	if used := len(j.arena.chunks) - len(j.arena.free); used < 4 {
		t.Fatalf("arena holds %d chunks, want more than 3", used)
	}
	for i, k := range order {
		switch i % 3 {
		case 0:
			j.Observe(act(k.user, k.video, event.Complete, time.Minute))
			want[k].label, want[k].why = 1, "complete"
		case 1:
			if i%2 == 0 {
				j.Observe(act(k.user, k.video, event.Skip, time.Minute))
				want[k].why = "skip"
			}
		}
	}
	got := j.Flush(joinT0.Add(time.Hour))
	if len(got) != len(order) {
		t.Fatalf("flush returned %d samples, want %d", len(got), len(order))
	}
	for _, s := range got {
		w := want[joinKey{s.UserID, s.VideoID}]
		if w == nil {
			t.Fatalf("sample for unknown pair %q/%q", s.UserID, s.VideoID)
		}
		if s.RequestID != w.e.RequestID || !bytes.Equal(s.Features, w.e.Features) {
			t.Errorf("%s/%s: request %q, %d feature bytes; want %q, %d", s.UserID, s.VideoID, s.RequestID, len(s.Features), w.e.RequestID, len(w.e.Features))
		}
		if s.Label != w.label || s.Reason != w.why {
			t.Errorf("%s/%s: label %v (%s), want %v (%s)", s.UserID, s.VideoID, s.Label, s.Reason, w.label, w.why)
		}
		// The same instant and offset, so the JSON "ts" is unchanged.
		gotTS, _ := json.Marshal(s.TS)
		wantTS, _ := json.Marshal(w.e.TS)
		if !s.TS.Equal(w.e.TS) || string(gotTS) != string(wantTS) {
			t.Errorf("%s/%s: ts %s, want %s", s.UserID, s.VideoID, gotTS, wantTS)
		}
		if loc := w.e.TS.Location(); (loc == time.UTC || loc == time.Local) && s.TS != w.e.TS {
			t.Errorf("%s/%s: ts %#v, want %#v", s.UserID, s.VideoID, s.TS, w.e.TS)
		}
		delete(want, joinKey{s.UserID, s.VideoID})
	}
	if st := j.Stats(); st.Pending != 0 || j.arena.live != 0 {
		t.Errorf("after the flush: %d pending, %d arena bytes live", st.Pending, j.arena.live)
	}
}

func TestJoinerArenaReleasesChunks(t *testing.T) {
	j, _ := NewJoiner(DefaultJoinConfig())
	feats := joinFeatures(1, 2000)
	observe := func(from, n int, at time.Duration) {
		for i := from; i < from+n; i++ {
			e := imp(fmt.Sprint("u", i%500), fmt.Sprint("v", i), at)
			e.Features = feats
			j.Observe(e)
		}
	}
	observe(0, 20_000, 0) // ~40 MiB
	if n := len(j.arena.chunks); n < 30 {
		t.Fatalf("arena has %d chunks for 40 MiB", n)
	}
	if got := j.Flush(joinT0.Add(time.Hour)); len(got) != 20_000 {
		t.Fatalf("flush expired %d, want 20000", len(got))
	}
	observe(20_000, 10, time.Hour)
	held := 0
	for _, c := range j.arena.chunks {
		if c.buf != nil {
			held++
		}
	}
	if held > 1 || len(j.arena.spare) > joinArenaSpares || j.arena.held > joinChunkSize {
		t.Errorf("with 10 pending the arena holds %d chunks (%d bytes) and %d spares", held, j.arena.held, len(j.arena.spare))
	}
	if st := j.Stats(); st.Pending != 10 || len(j.queue)-j.head > 2048 {
		t.Errorf("pending %d, queue %d", st.Pending, len(j.queue)-j.head)
	}
}

// Most impressions are labelled within seconds, a few wait out the
// window: those few must not pin every chunk written since.
func TestJoinerArenaStaysProportionalToPending(t *testing.T) {
	j, _ := NewJoiner(DefaultJoinConfig())
	moves := 0
	for i := range 50_000 {
		u, v := fmt.Sprint("u", i%300), fmt.Sprint("v", i)
		e := imp(u, v, time.Duration(i)*time.Millisecond)
		e.Features = joinFeatures(i, 1000)
		held := j.arena.held
		j.Observe(e)
		if i%10 != 0 {
			j.Observe(act(u, v, event.Skip, time.Duration(i)*time.Millisecond))
		}
		if a := &j.arena; a.held > 2*a.live+5*joinChunkSize {
			t.Fatalf("after %d impressions: arena holds %d bytes for %d live", i+1, a.held, a.live)
		} else if a.held < held {
			moves++
		}
	}
	if moves == 0 {
		t.Fatal("the arena never shrank: the test does not test moving entries")
	}
	got := j.Flush(joinT0.Add(time.Hour))
	if len(got) != 50_000 {
		t.Fatalf("flush returned %d samples, want 50000", len(got))
	}
	for _, s := range got {
		var i int
		fmt.Sscanf(s.VideoID, "v%d", &i)
		if !bytes.Equal(s.Features, joinFeatures(i, 1000)) || s.RequestID != "r1" || s.UserID != fmt.Sprint("u", i%300) {
			t.Fatalf("sample %s/%s lost its bytes in a move: %q", s.UserID, s.VideoID, s.Features)
		}
	}
}

func TestJoinerMaxPendingDropsOldest(t *testing.T) {
	cfg := DefaultJoinConfig()
	cfg.MaxPending = 50
	j, _ := NewJoiner(cfg)
	for i := range 5000 {
		e := imp("u", fmt.Sprint("v", i), time.Duration(i)*time.Millisecond)
		e.Features = joinFeatures(i, 3000) // 15 MB: the dropped span chunks
		j.Observe(e)
	}
	st := j.Stats()
	if st.Pending != 50 || st.Dropped != 4950 || st.Expired != 0 {
		t.Fatalf("stats = %+v, want 50 pending and 4950 dropped", st)
	}
	live := 0
	for i := 4950; i < 5000; i++ {
		live += len("u") + len(fmt.Sprint("v", i)) + len("r1") + 3000
	}
	if j.arena.live != live || j.arena.held > 2*joinChunkSize {
		t.Errorf("arena: %d bytes live, %d held, for 50 pending", j.arena.live, j.arena.held)
	}
	j.Observe(act("u", "v4949", event.Complete, time.Hour)) // dropped
	j.Observe(act("u", "v4950", event.Complete, 5*time.Second))
	got := j.Flush(joinT0.Add(time.Hour))
	if len(got) != 50 || got[0].VideoID != "v4950" || got[0].Label != 1 || !bytes.Equal(got[0].Features, joinFeatures(4950, 3000)) {
		t.Fatalf("got %d samples, first %+v; want the newest 50, v4950 labelled", len(got), got[0].VideoID)
	}
	for i, s := range got[1:] {
		if want := fmt.Sprint("v", 4951+i); s.VideoID != want || s.Reason != ReasonTimeout {
			t.Errorf("sample %d is %s (%s), want %s expired", i+1, s.VideoID, s.Reason, want)
		}
	}
}

func TestJoinerLabelNeedsTheSamePair(t *testing.T) {
	cases := []struct {
		name        string
		user, video string // of the label, for an impression of ("ab", "c")
		closes      bool
	}{
		{"same pair", "ab", "c", true},
		{"same video, another user", "ab2", "c", false},
		{"same user, another video", "ab", "c2", false},
		{"same bytes, split differently", "a", "bc", false},
		{"swapped", "c", "ab", false},
		{"empty user", "", "abc", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			j, _ := NewJoiner(DefaultJoinConfig())
			j.Observe(imp("ab", "c", 0))
			j.Observe(act(c.user, c.video, event.Complete, time.Second))
			got := j.Flush(joinT0.Add(time.Minute))
			if closed := len(got) == 1; closed != c.closes {
				t.Fatalf("label by %q on %q: samples %+v, want closed=%v", c.user, c.video, got, c.closes)
			}
			if st := j.Stats(); st.Pending != 1-len(got) {
				t.Errorf("pending = %d", st.Pending)
			}
		})
	}
}

// Hashes of different pairs collide about never; when they do, the entry
// under the hash is not the label's impression, and a new impression
// under it closes it as if shown again.
func TestJoinerHashCollision(t *testing.T) {
	j, _ := NewJoiner(DefaultJoinConfig())
	j.Observe(imp("u", "a", 0))
	// Make ("u", "a")'s entry sit under ("u", "b")'s hash.
	ha, hb := j.pairHash("u", "a"), j.pairHash("u", "b")
	i := j.pending[ha]
	delete(j.pending, ha)
	j.pending[hb], j.queue[i].hash = i, hb
	j.Observe(act("u", "b", event.Complete, time.Second)) // not a's label: waits
	if st := j.Stats(); st.Pending != 1 || st.Positive != 0 {
		t.Fatalf("a label for (u, b) closed (u, a): %+v", st)
	}
	j.Observe(imp("u", "b", 2*time.Second))
	got := j.Flush(joinT0.Add(time.Hour))
	if len(got) != 2 || got[0].VideoID != "a" || got[0].Reason != ReasonTimeout ||
		got[1].VideoID != "b" || got[1].Reason != "complete" {
		t.Fatalf("samples = %+v, want a expired and b labelled by its early complete", got)
	}
	if len(j.pending) != 0 || j.arena.live != 0 {
		t.Errorf("left %d pending, %d arena bytes", len(j.pending), j.arena.live)
	}
}

// A zero or ancient timestamp is outside UnixNano's range: it must still
// expire, and come back as it was.
func TestJoinerZeroTimestamp(t *testing.T) {
	j, _ := NewJoiner(DefaultJoinConfig())
	j.Observe(event.Event{Type: event.Impression, UserID: "u", VideoID: "a", Features: []byte(`{}`)})
	got := j.Flush(joinT0)
	if len(got) != 1 || got[0].TS != (time.Time{}) {
		t.Fatalf("samples = %+v, want the zero-time impression expired", got)
	}
}

func TestJoinerObserveAllocations(t *testing.T) {
	if raceEnabled || testing.Short() {
		t.Skip("allocation counts need a normal build")
	}
	cfg := DefaultJoinConfig()
	cfg.MaxPending = 20_000
	j, _ := NewJoiner(cfg)
	s := newBenchStream()
	i := 0
	for ; i < 3*cfg.MaxPending; i++ { // full, and the queue grown to its steady size
		j.Observe(s.impression(i))
	}
	allocs := testing.AllocsPerRun(10_000, func() {
		j.Observe(s.impression(i))
		i++
	})
	if allocs > 0.1 {
		t.Errorf("%.2f allocations per impression observed, want none amortised", allocs)
	}
}

func TestJoinerPendingHeapObjects(t *testing.T) {
	if raceEnabled || testing.Short() {
		t.Skip("heap measurements need a normal build")
	}
	if objects, _ := measurePendingHeap(20_000); objects > 0.1 {
		t.Errorf("%.3f heap objects per pending impression, want well under 0.1", objects)
	}
}

// The queue is only invisible to the garbage collector while its entries
// hold no pointers.
func TestJoinerPendingEntryHasNoPointers(t *testing.T) {
	typ := reflect.TypeFor[pendingEntry]()
	for i := range typ.NumField() {
		switch f := typ.Field(i); f.Type.Kind() {
		case reflect.Bool, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
			reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		default:
			t.Errorf("pendingEntry.%s is a %s: entries must stay pointer-free", f.Name, f.Type)
		}
	}
}
