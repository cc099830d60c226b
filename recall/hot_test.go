package recall

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"reelfeed/catalog"
	"reelfeed/event"
	"reelfeed/feature"
	"reelfeed/internal/testenv"
)

// hotWorld is a catalog and a feature store with day-window engagement.
type hotWorld struct {
	cat      *catalog.Catalog
	features *feature.Memory
	seq      int
}

func newHotWorld() *hotWorld {
	return &hotWorld{cat: catalog.New(), features: feature.NewMemory(feature.DefaultConfig())}
}

func (w *hotWorld) video(id string, quality float64, age time.Duration, regions ...string) {
	w.cat.Upsert(&catalog.Video{
		ID: id, UploaderID: "up", Category: "c", Kind: catalog.KindVideo,
		Quality: quality, PublishedAt: jobsNow.Add(-age), Regions: regions,
	})
}

// engage records n events of typ on video an hour before jobsNow.
func (w *hotWorld) engage(t *testing.T, video string, typ event.Type, n int) {
	t.Helper()
	events := make([]event.Event, n)
	for i := range events {
		w.seq++
		events[i] = event.Event{
			ID: fmt.Sprint("hot-", w.seq), UserID: fmt.Sprint("u", i), VideoID: video,
			Type: typ, TS: jobsNow.Add(-time.Hour),
		}
	}
	if _, err := w.features.Apply(context.Background(), events); err != nil {
		t.Fatal(err)
	}
}

func (w *hotWorld) job(cfg HotConfig, store ListStore) *HotJob {
	j := jobsMust(NewHotJob(cfg, w.cat, w.features, store, nil, nil))
	j.now = func() time.Time { return jobsNow }
	return j
}

func hotList(t *testing.T, store ListStore, region string) []string {
	t.Helper()
	l, err := store.Get(context.Background(), hotNamespace, region, 0)
	if err != nil {
		t.Fatal(err)
	}
	ids := make([]string, len(l))
	for i, s := range l {
		ids[i] = s.ID
	}
	return ids
}

func hotRanksBefore(list []string, a, b string) bool {
	ia, ib := slices.Index(list, a), slices.Index(list, b)
	return ia >= 0 && ib >= 0 && ia < ib
}

func TestHotJobRanksEngagementAndRespectsRegions(t *testing.T) {
	w := newHotWorld()
	day := 24 * time.Hour
	w.video("engaged", 0.5, day)
	w.video("idle", 0.5, day)
	w.video("us-only", 0.5, day, "us")
	w.video("de-only", 0.5, day, "de")
	w.video("us-de", 0.5, day, "us", "de")
	w.video("exposed", 0.5, day) // shown a lot, rarely watched
	w.video("loved", 0.5, day)   // shown less, watched and liked by most
	w.engage(t, "engaged", event.Impression, 100)
	w.engage(t, "engaged", event.Play, 60)
	w.engage(t, "engaged", event.Complete, 40)
	w.engage(t, "engaged", event.Like, 10)
	w.engage(t, "exposed", event.Impression, 20000)
	w.engage(t, "exposed", event.Play, 400)
	w.engage(t, "exposed", event.Complete, 100)
	w.engage(t, "loved", event.Impression, 300)
	w.engage(t, "loved", event.Play, 250)
	w.engage(t, "loved", event.Complete, 200)
	w.engage(t, "loved", event.Like, 80)

	store := NewMemoryListStore()
	res := mustRun(t, w.job(DefaultHotConfig(), store))

	tests := []struct {
		region  string
		want    []string
		notWant []string
	}{
		{region: "", want: []string{"engaged", "idle", "us-only", "de-only", "us-de", "exposed", "loved"}},
		{region: "us", want: []string{"engaged", "idle", "us-only", "us-de"}, notWant: []string{"de-only"}},
		{region: "de", want: []string{"engaged", "idle", "de-only", "us-de"}, notWant: []string{"us-only"}},
	}
	for _, tc := range tests {
		list := hotList(t, store, tc.region)
		for _, id := range tc.want {
			if !slices.Contains(list, id) {
				t.Errorf("hot list %q = %v: missing %s", tc.region, list, id)
			}
		}
		for _, id := range tc.notWant {
			if slices.Contains(list, id) {
				t.Errorf("hot list %q = %v: holds %s, not allowed there", tc.region, list, id)
			}
		}
		if !hotRanksBefore(list, "engaged", "idle") {
			t.Errorf("hot list %q = %v: the engaged video must rank above the idle one of the same quality", tc.region, list)
		}
	}
	if global := hotList(t, store, ""); !hotRanksBefore(global, "loved", "exposed") {
		t.Errorf("global hot list = %v: loved (most impressions watched) must beat exposed (most impressions)", global)
	}
	if res.Videos != 7 || res.Regions != 2 || res.Lists != 3 || res.Items != 7+6+6 {
		t.Errorf("result = %+v", res)
	}
}

func TestHotJobQualityAndFreshnessOrderUnwatchedVideos(t *testing.T) {
	w := newHotWorld()
	w.video("fresh-good", 0.9, time.Hour)
	w.video("fresh-poor", 0.2, time.Hour)
	w.video("old-good", 0.9, 60*24*time.Hour)
	store := NewMemoryListStore()
	mustRun(t, w.job(DefaultHotConfig(), store))
	want := []string{"fresh-good", "old-good", "fresh-poor"}
	if got := hotList(t, store, ""); !slices.Equal(got, want) {
		t.Errorf("hot list = %v, want %v", got, want)
	}
}

func TestHotJobListSizeAndVanishedRegions(t *testing.T) {
	w := newHotWorld()
	for i := range 5 {
		w.video(fmt.Sprint("g", i), float64(i)/10, time.Hour)
	}
	w.video("de-only", 0.1, time.Hour, "de")
	cfg := DefaultHotConfig()
	cfg.ListSize = 2
	store := NewMemoryListStore()
	job := w.job(cfg, store)
	mustRun(t, job)
	if got := hotList(t, store, ""); !slices.Equal(got, []string{"g4", "g3"}) {
		t.Errorf("global list = %v, want the best 2", got)
	}
	if got := hotList(t, store, "de"); !slices.Equal(got, []string{"g4", "g3"}) {
		t.Errorf("de list = %v, want the best 2 allowed in de", got)
	}

	w.cat.Delete("de-only")
	mustRun(t, job)
	if got := hotList(t, store, "de"); len(got) != 0 {
		t.Errorf("de list after its last video left = %v, want none (readers fall back to global)", got)
	}
}

func TestHotSourceRecall(t *testing.T) {
	ctx := context.Background()
	w := newHotWorld()
	for i := range 6 {
		w.video(fmt.Sprint("g", i), 0.1+float64(i)/10, time.Hour)
	}
	w.video("us-only", 0.95, time.Hour, "us")
	w.video("de-only", 0.99, time.Hour, "de")
	store := NewMemoryListStore()
	mustRun(t, w.job(DefaultHotConfig(), store))
	w.cat.Delete("g4") // deleted after the lists were built
	src := NewHotSource(store, w.cat)

	tests := []struct {
		name   string
		region string
		played []string
		shown  []string
		quota  int
		want   []string
	}{
		{name: "region first", region: "us", quota: 3, want: []string{"us-only", "g5", "g3"}},
		{name: "global for unknown region", region: "", quota: 3, want: []string{"de-only", "us-only", "g5"}},
		{name: "region without a list", region: "fr", quota: 3, want: []string{"g5", "g3", "g2"}},
		{name: "played skipped", region: "us", played: []string{"us-only", "g5"}, quota: 3, want: []string{"g3", "g2", "g1"}},
		{name: "shown last", region: "us", shown: []string{"us-only"}, quota: 10, want: []string{"g5", "g3", "g2", "g1", "g0", "us-only"}},
		{name: "zero quota", region: "us", quota: 0, want: []string{}},
	}
	// Three rounds: item by item, resolving the list version, resolved.
	for round := range 3 {
		for _, tc := range tests {
			t.Run(fmt.Sprintf("%s/round%d", tc.name, round), func(t *testing.T) {
				req := jobsRequest("u", tc.region, jobsNow, nil)
				for _, id := range tc.played {
					req.Profile.Played[id] = jobsNow
				}
				for _, id := range tc.shown {
					req.Profile.Shown[id] = jobsNow
				}
				got, err := src.Recall(ctx, req, tc.quota)
				if err != nil {
					t.Fatal(err)
				}
				if ids := candidateIDs(got); !slices.Equal(ids, tc.want) {
					t.Errorf("hot = %v, want %v", ids, tc.want)
				}
				for _, c := range got {
					if c.Branch != "hot" {
						t.Errorf("branch = %q", c.Branch)
					}
				}
			})
		}
	}

	// A rebuilt list is read as such, not from the resolved old version.
	w.video("new-best", 1, time.Minute)
	mustRun(t, w.job(DefaultHotConfig(), store))
	got, err := src.Recall(ctx, jobsRequest("u", "fr", jobsNow, nil), 1)
	if err != nil {
		t.Fatal(err)
	}
	if ids := candidateIDs(got); !slices.Equal(ids, []string{"new-best"}) {
		t.Fatalf("after the list was rebuilt: %v", ids)
	}
}

func TestHotListsSharedThroughRedis(t *testing.T) {
	client, prefix := testenv.Redis(t)
	w := newHotWorld()
	w.video("a", 0.9, time.Hour)
	w.video("b", 0.5, time.Hour, "us")
	mustRun(t, w.job(DefaultHotConfig(), NewRedisListStore(client, prefix, time.Second)))

	replica := NewHotSource(NewRedisListStore(client, prefix, time.Second), w.cat)
	got, err := replica.Recall(context.Background(), jobsRequest("u", "us", jobsNow, nil), 10)
	if err != nil {
		t.Fatal(err)
	}
	if ids := candidateIDs(got); !slices.Equal(ids, []string{"a", "b"}) {
		t.Errorf("another replica's hot branch = %v, want [a b]", ids)
	}
}

func TestHotJobHonoursCancellation(t *testing.T) {
	w := newHotWorld()
	w.video("a", 0.5, time.Hour)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	store := NewMemoryListStore()
	if _, err := w.job(DefaultHotConfig(), store).Run(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Run with a cancelled ctx = %v, want context.Canceled", err)
	}
	if got := hotList(t, store, ""); len(got) != 0 {
		t.Errorf("a cancelled run stored %v", got)
	}
}

// BenchmarkHotSourceRecall reads the hot branch for a user with a played
// history, as every feed request and backfill does: 100k videos, 20 regions.
func BenchmarkHotSourceRecall(b *testing.B) {
	w := newHotWorld()
	for i := range 100_000 {
		var regions []string
		if i%4 == 0 {
			regions = []string{fmt.Sprint("r", i%20)}
		}
		w.video(fmt.Sprint("v", i), float64(i%1000)/1000, time.Duration(i)*time.Minute, regions...)
	}
	run := func(b *testing.B, store ListStore) {
		if _, err := w.job(DefaultHotConfig(), store).Run(context.Background()); err != nil {
			b.Fatal(err)
		}
		src := NewHotSource(store, w.cat)
		req := jobsRequest("u", "r4", jobsNow, nil)
		top, _ := store.Get(context.Background(), hotNamespace, "r4", 0)
		for i, s := range top {
			if i%3 == 0 {
				req.Profile.Played[s.ID] = jobsNow
			}
		}
		for i := range 300 {
			req.Profile.Played[fmt.Sprint("v", i*7)] = jobsNow
		}
		b.ReportAllocs()
		b.ResetTimer()
		for b.Loop() {
			got, err := src.Recall(context.Background(), req, 100)
			if err != nil || len(got) != 100 {
				b.Fatalf("Recall = %d candidates, %v", len(got), err)
			}
		}
	}
	b.Run("memory", func(b *testing.B) { run(b, NewMemoryListStore()) })
	b.Run("redis-cached", func(b *testing.B) {
		client, prefix := testenv.Redis(b)
		run(b, NewRedisListStore(client, prefix, time.Second))
	})
}

// BenchmarkHotJob rebuilds the hot lists of a 100k-video catalog in 20
// regions from the memory feature store.
func BenchmarkHotJob(b *testing.B) {
	w := newHotWorld()
	var events []event.Event
	for i := range 100_000 {
		var regions []string
		if i%4 == 0 {
			regions = []string{fmt.Sprint("r", i%20)}
		}
		id := fmt.Sprint("v", i)
		w.video(id, float64(i%1000)/1000, time.Duration(i)*time.Minute, regions...)
		for k := range i % 7 {
			events = append(events, event.Event{ID: fmt.Sprint(id, "-", k), UserID: "u", VideoID: id, Type: event.Type(k), TS: jobsNow.Add(-time.Hour)})
		}
	}
	if _, err := w.features.Apply(context.Background(), events); err != nil {
		b.Fatal(err)
	}
	job := w.job(DefaultHotConfig(), NewMemoryListStore())
	benchmarkJob(b, job)
}
