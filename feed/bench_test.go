package feed

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"reelfeed/catalog"
	"reelfeed/event"
)

const (
	benchVideos = 100_000
	benchUsers  = 50_000
)

// discardSink stands in for the bus: the benchmark measures the pipeline.
type discardSink struct{ n atomic.Int64 }

func (s *discardSink) Publish(_ context.Context, evs []event.Event) { s.n.Add(int64(len(evs))) }

var (
	benchOnce  sync.Once
	benchWorld *world
)

// benchmarkWorld builds, once per test binary, a 100k-video catalog and
// 50k users with history: each user watched, completed and liked videos of
// two favourite categories and was shown more.
func benchmarkWorld(b *testing.B) *world {
	benchOnce.Do(func() {
		w := newWorld(b, worldSpec{videos: benchVideos, categories: 16, seed: 42})
		byCat := map[string][]*catalog.Video{}
		for _, v := range w.videos {
			byCat[v.Category] = append(byCat[v.Category], v)
		}
		rng := rand.New(rand.NewPCG(42, 43))
		batch := make([]event.Event, 0, 4096)
		flush := func() {
			w.apply(b, batch...)
			batch = batch[:0]
		}
		now := w.clock.Now()
		for u := range benchUsers {
			user := fmt.Sprintf("user%05d", u)
			favs := []string{categories[rng.IntN(16)], categories[rng.IntN(16)]}
			for e := range 12 {
				list := byCat[favs[e%2]]
				v := list[rng.IntN(len(list))]
				ts := now.Add(-time.Duration(rng.Int64N(int64(7 * 24 * time.Hour))))
				for _, typ := range []event.Type{event.Impression, event.Play, event.Complete} {
					batch = append(batch, event.Event{UserID: user, VideoID: v.ID, Type: typ, TS: ts})
				}
				if e%3 == 0 {
					batch = append(batch, event.Event{UserID: user, VideoID: v.ID, Type: event.Like, TS: ts})
				}
				other := w.videos[rng.IntN(len(w.videos))]
				batch = append(batch, event.Event{UserID: user, VideoID: other.ID, Type: event.Impression, TS: ts})
			}
			if len(batch) >= 4000 {
				flush()
			}
		}
		flush()
		w.buildSources(b) // hot lists over the engagement just applied
		benchWorld = w
	})
	if benchWorld == nil {
		b.Fatal("benchmark world failed to build")
	}
	return benchWorld
}

func benchService(b *testing.B, w *world) *Service {
	svc, err := New(Deps{
		Catalog: w.cat, Profiles: w.profiles, Features: w.features, Sources: w.sources, Backfill: w.hot,
		Scorer: w.scorer, Knobs: w.knobs, Impressions: &discardSink{}, Now: w.clock.Now,
	}, DefaultConfig())
	if err != nil {
		b.Fatal(err)
	}
	// Check the load is real: most requests rank at least 400 candidates.
	ranked := 0
	for i := range 50 {
		resp, err := svc.Feed(context.Background(), Request{UserID: fmt.Sprintf("user%05d", i*997%benchUsers), Debug: true})
		if err != nil {
			b.Fatal(err)
		}
		ranked += resp.Debug.Stages[stageTruncate].Out
	}
	if ranked/50 < 400 {
		b.Fatalf("only %d candidates reach the ranker on average; the benchmark needs >= 400", ranked/50)
	}
	b.Cleanup(func() { b.ReportMetric(float64(ranked)/50, "ranked/req") })
	return svc
}

// cpuTime is the process's user+system CPU time: on a shared machine it
// measures the pipeline's cost better than wall time.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// reportCPU adds cpu-µs/req: CPU time (all goroutines, GC included) per
// request since start.
func reportCPU(b *testing.B, start time.Duration) {
	b.ReportMetric(float64((cpuTime(b)-start).Microseconds())/float64(b.N), "cpu-µs/req")
}

// BenchmarkFeed is one request at a time: ns/op and allocs/op are per
// request (10 items, active users with history, 100k videos).
func BenchmarkFeed(b *testing.B) {
	w := benchmarkWorld(b)
	svc := benchService(b, w)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	cpu := cpuTime(b)
	i := 0
	for b.Loop() {
		i++
		if _, err := svc.Feed(ctx, Request{UserID: fmt.Sprintf("user%05d", i*7919%benchUsers)}); err != nil {
			b.Fatal(err)
		}
	}
	reportCPU(b, cpu)
}

// BenchmarkFeedParallel runs requests from GOMAXPROCS goroutines.
func BenchmarkFeedParallel(b *testing.B) {
	w := benchmarkWorld(b)
	svc := benchService(b, w)
	var next atomic.Int64
	b.ReportAllocs()
	b.ResetTimer()
	cpu := cpuTime(b)
	defer reportCPU(b, cpu)
	b.RunParallel(func(pb *testing.PB) {
		ctx := context.Background()
		for pb.Next() {
			i := next.Add(1)
			if _, err := svc.Feed(ctx, Request{UserID: fmt.Sprintf("user%05d", i*7919%benchUsers)}); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
