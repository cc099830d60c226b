package feature_test

import (
	"context"
	"math/rand/v2"
	"strconv"
	"testing"
	"time"

	"reelfeed/event"
	"reelfeed/feature"
)

const (
	benchBatch  = 500
	benchVideos = 100_000
	benchGetIDs = 500
)

var benchNow = time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)

func videoID(i int) string { return "video-" + strconv.Itoa(i) }

// fillBatch fills events with new ids over videos 0..videos-1, typed like
// real traffic (mostly impressions and plays), dated over the last 26 hours.
func fillBatch(rng *rand.Rand, events []event.Event, videos int, seq *int) {
	for k := range events {
		*seq++
		typ := event.Impression
		switch r := rng.IntN(10); {
		case r >= 9:
			typ = event.Type(2 + rng.IntN(int(event.NumTypes)-2))
		case r >= 6:
			typ = event.Play
		}
		events[k] = event.Event{
			ID:      "ev-" + strconv.Itoa(*seq),
			UserID:  "user-" + strconv.Itoa(rng.IntN(1_000_000)),
			VideoID: videoID(rng.IntN(videos)),
			Type:    typ,
			TS:      benchNow.Add(-time.Duration(rng.Int64N(int64(26 * time.Hour)))),
		}
	}
}

// benchApply measures Apply of batches of 500 new events over 100k videos;
// one op is one batch.
func benchApply(b *testing.B, s feature.Store) {
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(1, 1))
	events := make([]event.Event, benchBatch)
	seq := 0
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		fillBatch(rng, events, benchVideos, &seq)
		b.StartTimer()
		n, err := s.Apply(ctx, events)
		if err != nil {
			b.Fatal(err)
		}
		if n != len(events) {
			b.Fatalf("applied %d of %d", n, len(events))
		}
	}
	b.ReportMetric(float64(b.N*benchBatch)/b.Elapsed().Seconds(), "events/s")
}

// preload applies perVideo events to each of videos videos.
func preload(tb testing.TB, s feature.Store, videos, perVideo int) {
	tb.Helper()
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(2, 2))
	events := make([]event.Event, benchBatch)
	seq := 0
	for done := 0; done < videos*perVideo; done += benchBatch {
		fillBatch(rng, events, videos, &seq)
		if _, err := s.Apply(ctx, events); err != nil {
			tb.Fatal(err)
		}
	}
}

// idLists returns 64 request-sized id lists over videos: uniformly drawn
// (every id a cold cache line: the worst case), or Zipf-skewed as a feed's
// candidates are (hot videos recur across requests).
func idLists(videos int, skewed bool) [][]string {
	rng := rand.New(rand.NewPCG(3, 3))
	zipf := rand.NewZipf(rng, 1.1, 1, uint64(videos-1))
	lists := make([][]string, 64)
	for i := range lists {
		lists[i] = make([]string, benchGetIDs)
		for k := range lists[i] {
			if skewed {
				lists[i][k] = videoID(int(zipf.Uint64()))
			} else {
				lists[i][k] = videoID(rng.IntN(videos))
			}
		}
	}
	return lists
}

// benchGet measures Get of 500 ids, uniform and skewed, read at one minute
// (as the feed does for a minute of wall clock) and at a new minute every
// call (every video's window sums recomputed).
func benchGet(b *testing.B, s feature.Store, videos int) {
	ctx := context.Background()
	for _, draw := range []struct {
		name   string
		skewed bool
	}{{"uniform", false}, {"zipf", true}} {
		lists := idLists(videos, draw.skewed)
		for _, clock := range []struct {
			name string
			now  func(i int) time.Time
		}{
			{"same-minute", func(int) time.Time { return benchNow }},
			{"new-minute", func(i int) time.Time { return benchNow.Add(time.Duration(i) * time.Minute) }},
		} {
			b.Run(draw.name+"/"+clock.name, func(b *testing.B) {
				b.ReportAllocs()
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					st, err := s.Get(ctx, nil, lists[i%len(lists)], clock.now(i))
					if err != nil {
						b.Fatal(err)
					}
					if len(st) != benchGetIDs {
						b.Fatalf("got %d stats", len(st))
					}
				}
			})
		}
	}
}
