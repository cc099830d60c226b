package recall

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"testing"
	"time"

	"reelfeed/event"
)

var jobsNow = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

func newTestI2IJob(cfg I2IConfig, log EventLog, store ListStore) *I2IJob {
	j := jobsMust(NewI2IJob(cfg, log, store, nil, nil))
	j.now = func() time.Time { return jobsNow }
	return j
}

// coEngagementLog: 30 users like A then B; 10 users like A and C; 100 users
// (the A-likers among them) complete the popular P; 20 users complete D and,
// three days later, E.
func coEngagementLog() *jobsEventLog {
	var b jobsLogBuilder
	t0 := jobsNow.Add(-2 * 24 * time.Hour)
	for u := range 30 {
		user := fmt.Sprint("ab-", u)
		b.add(user, "A", event.Like, t0.Add(time.Duration(u)*time.Minute))
		b.add(user, "B", event.Complete, t0.Add(time.Duration(u)*time.Minute+30*time.Second))
		b.add(user, "B", event.Like, t0.Add(time.Duration(u)*time.Minute+31*time.Second))
		b.add(user, "P", event.Complete, t0.Add(time.Duration(u)*time.Minute+time.Hour))
	}
	for u := range 10 {
		user := fmt.Sprint("ac-", u)
		b.add(user, "A", event.Like, t0.Add(time.Duration(u)*time.Minute))
		b.add(user, "C", event.Complete, t0.Add(time.Duration(u)*time.Minute+time.Minute))
		b.add(user, "P", event.Complete, t0.Add(time.Duration(u)*time.Minute+2*time.Minute))
	}
	for u := range 60 {
		b.add(fmt.Sprint("p-", u), "P", event.Complete, t0.Add(time.Duration(u)*time.Minute))
	}
	for u := range 20 {
		user := fmt.Sprint("de-", u)
		b.add(user, "D", event.Complete, jobsNow.Add(-5*24*time.Hour))
		b.add(user, "E", event.Complete, jobsNow.Add(-2*24*time.Hour))
	}
	// Impressions and plays are not positive: they must not pair A with X.
	for u := range 30 {
		b.add(fmt.Sprint("ab-", u), "X", event.Impression, t0.Add(time.Duration(u)*time.Minute+10*time.Second))
		b.add(fmt.Sprint("ab-", u), "X", event.Play, t0.Add(time.Duration(u)*time.Minute+11*time.Second))
	}
	return b.log()
}

func TestI2IJobFindsCoEngagedNeighbours(t *testing.T) {
	ctx := context.Background()
	store := NewMemoryListStore()
	res := mustRun(t, newTestI2IJob(DefaultI2IConfig(), coEngagementLog(), store))

	neighbours := func(id string) []string {
		l, err := store.Get(ctx, i2iNamespace, id, 0)
		if err != nil {
			t.Fatal(err)
		}
		ids := make([]string, len(l))
		for i, s := range l {
			ids[i] = s.ID
		}
		return ids
	}
	if got := neighbours("A"); len(got) == 0 || got[0] != "B" {
		t.Errorf("A's neighbours = %v, want B first", got)
	}
	if got := neighbours("A"); slices.Contains(got, "A") || slices.Contains(got, "X") {
		t.Errorf("A's neighbours = %v: must hold neither A itself nor the merely played X", got)
	}
	if got := neighbours("B"); len(got) == 0 || got[0] != "A" {
		t.Errorf("B's neighbours = %v, want A first", got)
	}
	if got := neighbours("A"); !slices.Contains(got, "C") {
		t.Errorf("A's neighbours = %v, want C among them", got)
	}
	if got := neighbours("D"); slices.Contains(got, "E") {
		t.Errorf("D's neighbours = %v: D and E were engaged three days apart, beyond the session gap", got)
	}
	if res.Videos != 6 || res.Lists == 0 || res.Items == 0 || res.Pairs == 0 || res.Events == 0 {
		t.Errorf("result = %+v", res)
	}

	// The popularity penalty: P co-occurs with A as often as B does, but
	// everyone watches P.
	l, _ := store.Get(ctx, i2iNamespace, "A", 0)
	score := map[string]float64{}
	for _, s := range l {
		score[s.ID] = s.Score
	}
	if score["P"] >= score["B"] {
		t.Errorf("A's neighbour scores B=%v P=%v: the popular P must rank below B", score["B"], score["P"])
	}
}

func TestI2IJobSessionGapAndSpan(t *testing.T) {
	for _, tc := range []struct {
		name     string
		gap      time.Duration
		span     int
		wantPair bool
	}{
		{"within gap", 4 * 24 * time.Hour, 20, true},
		{"beyond gap", 24 * time.Hour, 20, false},
		{"no time bound", 0, 20, true},
		{"beyond span", 4 * 24 * time.Hour, 1, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b jobsLogBuilder
			for u := range 5 {
				user := fmt.Sprint("u", u)
				b.add(user, "D", event.Complete, jobsNow.Add(-5*24*time.Hour))
				if tc.span == 1 {
					b.add(user, "mid", event.Complete, jobsNow.Add(-4*24*time.Hour))
				}
				b.add(user, "E", event.Complete, jobsNow.Add(-2*24*time.Hour))
			}
			cfg := DefaultI2IConfig()
			cfg.SessionGap, cfg.PairSpan = tc.gap, tc.span
			store := NewMemoryListStore()
			mustRun(t, newTestI2IJob(cfg, b.log(), store))
			l, _ := store.Get(context.Background(), i2iNamespace, "D", 0)
			paired := slices.ContainsFunc(l, func(s Scored) bool { return s.ID == "E" })
			if paired != tc.wantPair {
				t.Errorf("D paired with E = %v, want %v (neighbours %v)", paired, tc.wantPair, l)
			}
		})
	}
}

func TestI2IJobReplacesStaleNeighbours(t *testing.T) {
	ctx := context.Background()
	store := NewMemoryListStore()
	if err := store.Put(ctx, i2iNamespace, "gone", []Scored{{ID: "x", Score: 1}}); err != nil {
		t.Fatal(err)
	}
	mustRun(t, newTestI2IJob(DefaultI2IConfig(), coEngagementLog(), store))
	if l, _ := store.Get(ctx, i2iNamespace, "gone", 0); len(l) != 0 {
		t.Errorf("a video with no co-engagement left kept its old neighbours %v", l)
	}
}

func TestReplayAggregatesPerUserAndVideo(t *testing.T) {
	var b jobsLogBuilder
	at := jobsNow.Add(-time.Hour)
	b.add("u", "liked-twice", event.Like, at)
	b.add("u", "liked-twice", event.Like, at.Add(time.Second)) // a retried event
	b.add("u", "completed-disliked", event.Complete, at)
	b.add("u", "completed-disliked", event.Dislike, at.Add(time.Minute))
	b.add("u", "old", event.Complete, jobsNow.Add(-30*24*time.Hour))
	b.add("u", "played", event.Play, at)
	for i := range 5 {
		b.add("heavy", fmt.Sprint("h", i), event.Complete, at.Add(time.Duration(i)*time.Minute))
	}
	il, err := replayCFInteractions(context.Background(), b.log(), cfReplayOptions{
		since: jobsNow.Add(-7 * 24 * time.Hour), now: jobsNow,
		weights: defaultPositiveWeights(), halfLife: 0, maxItemsPerUser: 3, keepEngaged: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	items := map[string]map[string]float32{}
	engaged := map[string][]string{}
	for u, list := range il.items {
		items[il.userIDs[u]] = map[string]float32{}
		for _, it := range list {
			items[il.userIDs[u]][il.videoIDs[it.video]] = it.w
		}
		for _, v := range il.engaged[u] {
			engaged[il.userIDs[u]] = append(engaged[il.userIDs[u]], il.videoIDs[v])
		}
	}
	want := map[string]float32{"liked-twice": 1.5}
	if got := items["u"]; len(got) != 1 || got["liked-twice"] != 1.5 {
		t.Errorf("u's positives = %v, want %v (a repeat counts once, a dislike cancels, old and played are not positive)", got, want)
	}
	slices.Sort(engaged["u"])
	if want := []string{"completed-disliked", "liked-twice", "played"}; !slices.Equal(engaged["u"], want) {
		t.Errorf("u's engaged = %v, want %v", engaged["u"], want)
	}
	if got := items["heavy"]; len(got) != 3 || got["h4"] == 0 || got["h0"] != 0 {
		t.Errorf("heavy's positives = %v, want the latest 3", got)
	}
}

func TestI2ISourceRecallsNeighboursOfRecentPositives(t *testing.T) {
	ctx := context.Background()
	store := NewMemoryListStore()
	mustRun(t, newTestI2IJob(DefaultI2IConfig(), coEngagementLog(), store))
	cat := jobsCatalog(jobsNow, "A", "B", "C", "D", "E", "P", "X")
	src := jobsMust(NewI2ISource(DefaultI2IConfig(), store, cat))

	req := jobsRequest("fan", "", jobsNow, map[string]time.Time{"A": jobsNow.Add(-time.Hour)})
	got, err := src.Recall(ctx, req, 10)
	if err != nil {
		t.Fatal(err)
	}
	ids := candidateIDs(got)
	if len(ids) == 0 || ids[0] != "B" {
		t.Fatalf("i2i for a user who liked A = %v, want B first", ids)
	}
	if slices.Contains(ids, "A") {
		t.Errorf("i2i recalled the seed A itself: %v", ids)
	}
	for _, c := range got {
		if c.Branch != "i2i" || c.Score <= 0 {
			t.Errorf("candidate %+v: want branch i2i and a positive score", c)
		}
	}
	if got, _ := src.Recall(ctx, req, 1); len(got) != 1 {
		t.Errorf("quota 1 returned %d candidates", len(got))
	}

	cat.Delete("B")
	got, _ = src.Recall(ctx, req, 10)
	if slices.Contains(candidateIDs(got), "B") {
		t.Errorf("i2i recalled the deleted B: %v", candidateIDs(got))
	}
}

func TestI2ISourceWeighsSeedsByRecency(t *testing.T) {
	ctx := context.Background()
	store := NewMemoryListStore()
	cat := jobsCatalog(jobsNow, "recent-seed", "old-seed", "near-recent", "near-old", "near-both", "shown", "played")
	lists := map[string][]Scored{
		"recent-seed": {{ID: "near-recent", Score: 0.5}, {ID: "near-both", Score: 0.49}, {ID: "shown", Score: 0.9}, {ID: "played", Score: 1}, {ID: "old-seed", Score: 1}},
		"old-seed":    {{ID: "near-old", Score: 0.5}, {ID: "near-both", Score: 0.49}},
	}
	for k, l := range lists {
		if err := store.Put(ctx, i2iNamespace, k, l); err != nil {
			t.Fatal(err)
		}
	}
	req := jobsRequest("u", "", jobsNow, map[string]time.Time{
		"recent-seed": jobsNow.Add(-time.Minute),
		"old-seed":    jobsNow.Add(-5 * 24 * time.Hour),
	})
	req.Profile.Played["played"] = jobsNow.Add(-time.Hour)
	req.Profile.Shown["shown"] = jobsNow.Add(-time.Hour)
	got, err := jobsMust(NewI2ISource(DefaultI2IConfig(), store, cat)).Recall(ctx, req, 10)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"near-both", "near-recent", "near-old", "shown"}
	if ids := candidateIDs(got); !slices.Equal(ids, want) {
		t.Errorf("i2i = %v, want %v (summed over seeds, recent seeds first, seeds and played excluded, shown last)", ids, want)
	}
}

func TestI2IJobHonoursCancellation(t *testing.T) {
	log := coEngagementLog()
	ctx, cancel := context.WithCancel(context.Background())
	log.afterEach = func(i int) {
		if i == 10 {
			cancel()
		}
	}
	store := NewMemoryListStore()
	_, err := newTestI2IJob(DefaultI2IConfig(), log, store).Run(ctx)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Run with ctx cancelled mid-replay = %v, want context.Canceled", err)
	}
	if l, _ := store.Get(context.Background(), i2iNamespace, "A", 0); len(l) != 0 {
		t.Errorf("a cancelled run stored lists: %v", l)
	}
}

// BenchmarkI2IJob runs the job over 50k users × 50 events (2.5M events,
// 100k videos) with every CPU.
func BenchmarkI2IJob(b *testing.B) {
	world := syntheticWorld(50_000, 50, 100_000, jobsNow)
	cfg := DefaultI2IConfig()
	cfg.Workers = runtime.GOMAXPROCS(0)
	store := NewMemoryListStore()
	job := newTestI2IJob(cfg, world, store)
	benchmarkJob(b, job)
}

// BenchmarkI2ISourceRecall expands 20 seeds of 30 neighbours each, the
// default, for a user with 200 positive videos.
func BenchmarkI2ISourceRecall(b *testing.B) {
	ctx := context.Background()
	store := NewMemoryListStore()
	var ids []string
	for i := range 2000 {
		ids = append(ids, fmt.Sprint("v", i))
	}
	cat := jobsCatalog(jobsNow, ids...)
	positive := map[string]time.Time{}
	for s := range 200 {
		seed := ids[s]
		positive[seed] = jobsNow.Add(-time.Duration(s) * time.Hour)
		list := make([]Scored, 30)
		for k := range list {
			list[k] = Scored{ID: ids[(s*37+k*11)%len(ids)], Score: 1 / float64(k+1)}
		}
		if err := store.Put(ctx, i2iNamespace, seed, list); err != nil {
			b.Fatal(err)
		}
	}
	src := jobsMust(NewI2ISource(DefaultI2IConfig(), store, cat))
	req := jobsRequest("u", "", jobsNow, positive)
	b.ReportAllocs()
	for b.Loop() {
		if got, err := src.Recall(ctx, req, 100); err != nil || len(got) == 0 {
			b.Fatalf("Recall = %d, %v", len(got), err)
		}
	}
}

func TestLatestSeedsKeepsTheNewest(t *testing.T) {
	positive := map[string]time.Time{}
	for i := range 50 {
		positive[fmt.Sprintf("v%02d", i)] = jobsNow.Add(-time.Duration(i) * time.Minute)
	}
	positive["tie-a"] = jobsNow.Add(-2 * time.Minute)
	for _, tc := range []struct {
		n    int
		want []string
	}{
		{n: 1, want: []string{"v00"}},
		{n: 4, want: []string{"v00", "v01", "tie-a", "v02"}},
		{n: 100, want: nil}, // all 51, newest first
	} {
		got := latestSeeds(positive, tc.n)
		ids := make([]string, len(got))
		for i, s := range got {
			ids[i] = s.id
		}
		if tc.want == nil {
			if len(ids) != 51 || ids[0] != "v00" || ids[50] != "v49" {
				t.Errorf("n=%d: %v", tc.n, ids)
			}
			continue
		}
		if !slices.Equal(ids, tc.want) {
			t.Errorf("n=%d: seeds %v, want %v", tc.n, ids, tc.want)
		}
	}
}
