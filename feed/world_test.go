package feed

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"reelfeed/catalog"
	"reelfeed/event"
	"reelfeed/feature"
	"reelfeed/profile"
	"reelfeed/rank"
	"reelfeed/recall"
)

// testClock is the business clock of a test world.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// recordingSink keeps published impressions until the test delivers them
// to the stores, like the bus and consumer would.
type recordingSink struct {
	mu     sync.Mutex
	events []event.Event
	total  int
}

func (s *recordingSink) Publish(_ context.Context, evs []event.Event) {
	s.mu.Lock()
	s.events = append(s.events, evs...)
	s.total += len(evs)
	s.mu.Unlock()
}

func (s *recordingSink) take() []event.Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := s.events
	s.events = nil
	return out
}

// world is a catalog, stores and every recall branch this package's tests
// need, all real: memory catalog, memory profile and feature stores, the
// hot-list job and source, the tag, uploader, explore, start and new
// branches, and the formula scorer.
type world struct {
	clock    *testClock
	cat      *catalog.Catalog
	profiles *profile.Memory
	features *feature.Memory
	hot      *recall.HotSource
	sources  []recall.Source
	knobs    *Knobs
	scorer   rank.Scorer
	sink     *recordingSink
	reg      *prometheus.Registry
	videos   []*catalog.Video
	events   int
}

type worldSpec struct {
	videos     int
	categories int
	seed       uint64
}

var categories = []string{"cooking", "music", "sports", "gaming", "travel", "comedy", "pets", "science",
	"fashion", "news", "dance", "diy", "cars", "art", "film", "books"}

func newWorld(t testing.TB, spec worldSpec) *world {
	t.Helper()
	now := time.Now().UTC().Truncate(time.Second)
	w := &world{
		clock:    &testClock{t: now},
		cat:      catalog.New(),
		profiles: profile.NewMemory(profile.DefaultConfig()),
		features: feature.NewMemory(feature.DefaultConfig()),
		sink:     &recordingSink{},
		reg:      prometheus.NewRegistry(),
	}
	t.Cleanup(func() { w.profiles.Close(); w.features.Close() })
	rng := rand.New(rand.NewPCG(spec.seed, 7))
	ncat := min(spec.categories, len(categories))
	perUploader := 12
	for i := range spec.videos {
		cat := categories[i%ncat]
		v := &catalog.Video{
			ID:          fmt.Sprintf("v%05d", i),
			UploaderID:  fmt.Sprintf("up%04d", (i/ncat)/perUploader*ncat+i%ncat), // each uploader sticks to one category
			Title:       fmt.Sprintf("%s clip number %d", cat, i),
			Tags:        []string{cat + "-t" + fmt.Sprint(rng.IntN(6)), cat + "-t" + fmt.Sprint(6+rng.IntN(6)), fmt.Sprintf("g%d", rng.IntN(40))},
			Category:    cat,
			DurationMs:  15000,
			PublishedAt: now.Add(-time.Duration(rng.Int64N(int64(30 * 24 * time.Hour)))),
			Kind:        catalog.KindVideo,
			Quality:     0.1 + 0.9*rng.Float64(),
		}
		switch r := rng.IntN(100); {
		case r < 4:
			v.Kind = catalog.KindMusic
		case r < 8:
			v.Kind = catalog.KindImageSet
		case r < 14:
			v.Regions = []string{"us"}
		case r < 18:
			v.Regions = []string{"de", "fr"}
		}
		if rng.IntN(100) < 6 {
			v.PublishedAt = now.Add(-time.Duration(rng.Int64N(int64(24 * time.Hour))))
		}
		v.Normalize(now)
		w.cat.Upsert(v)
		w.videos = append(w.videos, v)
	}
	w.knobs = mustKnobs(t, DefaultKnobState())
	var err error
	if w.scorer, err = rank.NewFormula(rank.DefaultFormulaConfig(), w.knobs); err != nil {
		t.Fatal(err)
	}
	w.buildSources(t)
	return w
}

func mustKnobs(t testing.TB, s KnobState) *Knobs {
	t.Helper()
	k, err := NewKnobs(s)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// buildSources (re)warms the hot lists and builds every branch.
func (w *world) buildSources(t testing.TB) {
	t.Helper()
	ctx := context.Background()
	lists := recall.NewMemoryListStore()
	job, err := recall.NewHotJob(recall.DefaultHotConfig(), w.cat, w.features, lists, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := job.Run(ctx); err != nil {
		t.Fatal(err)
	}
	w.hot = recall.NewHotSource(lists, w.cat)
	tag, err1 := recall.NewTag(w.cat, w.cat, recall.DefaultTagConfig())
	upl, err2 := recall.NewUploader(w.cat, w.cat, recall.DefaultUploaderConfig())
	exp, err3 := recall.NewExplore(w.cat, recall.DefaultExploreConfig())
	start, err4 := recall.NewStart(w.cat, recall.DefaultStartConfig())
	fresh, err5 := recall.NewFresh(w.cat, w.features, recall.DefaultFreshConfig())
	for _, err := range []error{err1, err2, err3, err4, err5} {
		if err != nil {
			t.Fatal(err)
		}
	}
	w.sources = []recall.Source{w.hot, tag, upl, exp, start, fresh}
}

func testConfig() Config {
	cfg := DefaultConfig()
	// Generous budgets: the shared test machine compiles in parallel, and
	// a dropped branch would make composition assertions flaky. The
	// fail-open tests set their own.
	for name, b := range cfg.Branches {
		b.Budget = 2 * time.Second
		cfg.Branches[name] = b
	}
	cfg.DefaultBranch.Budget = 2 * time.Second
	cfg.Backfill.Budget = 2 * time.Second
	cfg.CDN = CDNConfig{Default: "https://cdn.test/v", Edges: map[string]string{"de": "https://eu.cdn.test/v"}}
	return cfg
}

func (w *world) service(t testing.TB, cfg Config, extra ...recall.Source) *Service {
	t.Helper()
	svc, err := New(Deps{
		Catalog: w.cat, Profiles: w.profiles, Features: w.features,
		Sources: append(append([]recall.Source{}, w.sources...), extra...), Backfill: w.hot,
		Scorer: w.scorer, Knobs: w.knobs, Impressions: w.sink, Metrics: w.reg, Now: w.clock.Now,
	}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return svc
}

// apply feeds behaviour events to both stores, as the consumer would.
func (w *world) apply(t testing.TB, evs ...event.Event) {
	t.Helper()
	ctx := context.Background()
	for i := range evs {
		if evs[i].ID == "" {
			w.events++
			evs[i].ID = fmt.Sprintf("test-%d", w.events)
		}
		if evs[i].TS.IsZero() {
			evs[i].TS = w.clock.Now()
		}
		if v, ok := w.cat.Get(evs[i].VideoID); ok && evs[i].Category == "" {
			evs[i].Category, evs[i].Tags, evs[i].UploaderID = v.Category, v.Tags, v.UploaderID
		}
	}
	if _, err := w.profiles.Apply(ctx, evs); err != nil {
		t.Fatal(err)
	}
	if _, err := w.features.Apply(ctx, evs); err != nil {
		t.Fatal(err)
	}
}

// deliver applies the impressions published so far.
func (w *world) deliver(t testing.TB) {
	t.Helper()
	if evs := w.sink.take(); len(evs) > 0 {
		w.apply(t, evs...)
	}
}

// engage makes user complete and like each video.
func (w *world) engage(t testing.TB, user string, videos ...*catalog.Video) {
	t.Helper()
	var evs []event.Event
	for _, v := range videos {
		for _, typ := range []event.Type{event.Impression, event.Play, event.Complete, event.Like} {
			evs = append(evs, event.Event{UserID: user, VideoID: v.ID, Type: typ})
		}
	}
	w.apply(t, evs...)
}

func (w *world) videosOf(category string, n int) []*catalog.Video {
	var out []*catalog.Video
	for _, v := range w.videos {
		if v.Category == category && len(out) < n && len(v.Regions) == 0 && v.Kind == catalog.KindVideo {
			out = append(out, v)
		}
	}
	return out
}

func feedOK(t testing.TB, svc *Service, req Request) *Response {
	t.Helper()
	resp, err := svc.Feed(context.Background(), req)
	if err != nil {
		t.Fatalf("feed %+v: %v", req, err)
	}
	return resp
}

func itemIDs(r *Response) []string {
	out := make([]string, len(r.Items))
	for i, it := range r.Items {
		out[i] = it.VideoID
	}
	return out
}
