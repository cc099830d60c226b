package rank

import (
	"encoding/json"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"reelfeed/event"
)

// The joiner's load in production: 500 feed requests/s × 10 items, each
// impression logging ~350 bytes of features, up to 200,000 pending.
const (
	benchUsers      = 50_000
	benchVideos     = 1_000
	benchMaxPending = 200_000
	benchFeatures   = 350
	benchEvery      = 200 * time.Microsecond // 5,000 impressions/s
)

// benchFeatureJSON returns a features object of about benchFeatures bytes,
// distinct per n.
func benchFeatureJSON(n int) json.RawMessage {
	var b strings.Builder
	fmt.Fprintf(&b, `{"v":1,"n":%d,"x":[`, n)
	for i := 0; b.Len() < benchFeatures-8; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "%.4f", float64((n*31+i*17)%10007)/10007)
	}
	b.WriteString("]}")
	return json.RawMessage(b.String())
}

// benchStream hands out impressions of 50k users over rotating videos, so
// (user, video) pairs stay distinct for far longer than MaxPending lasts.
// The strings and features are shared between events: it measures what
// Observe itself costs.
type benchStream struct {
	users, videos, requests []string
	features                []json.RawMessage
	t0                      time.Time
}

func newBenchStream() *benchStream {
	s := &benchStream{t0: joinT0}
	for i := range benchUsers {
		s.users = append(s.users, fmt.Sprintf("user-%06d", i))
	}
	for i := range benchVideos {
		s.videos = append(s.videos, fmt.Sprintf("video-%08d", i))
	}
	for i := range 4096 {
		s.requests = append(s.requests, fmt.Sprintf("0190c6a4-5e1b-7c3d-8f00-%012d", i))
	}
	for i := range 1024 {
		s.features = append(s.features, benchFeatureJSON(i))
	}
	return s
}

func (s *benchStream) impression(i int) event.Event {
	u, round := i%benchUsers, i/benchUsers
	return event.Event{
		Type:      event.Impression,
		UserID:    s.users[u],
		VideoID:   s.videos[(u+round)%benchVideos],
		RequestID: s.requests[(i/10)%len(s.requests)],
		TS:        s.t0.Add(time.Duration(i) * benchEvery),
		Features:  s.features[i%len(s.features)],
	}
}

// newBenchJoiner returns a joiner bounded like production's.
func newBenchJoiner(b *testing.B) *Joiner {
	cfg := DefaultJoinConfig()
	cfg.MaxPending = benchMaxPending
	j, err := NewJoiner(cfg)
	if err != nil {
		b.Fatal(err)
	}
	return j
}

func BenchmarkJoinerObserve(b *testing.B) {
	j, s := newBenchJoiner(b), newBenchStream()
	// Steady state: full, every new impression drops the oldest, and the
	// queue has grown to the most it holds between compactions.
	i := 0
	for ; i < 3*benchMaxPending; i++ {
		j.Observe(s.impression(i))
	}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		j.Observe(s.impression(i))
		i++
	}
	b.StopTimer()
	if st := j.Stats(); st.Pending != benchMaxPending {
		b.Fatalf("pending = %d, want %d", st.Pending, benchMaxPending)
	}
}

// BenchmarkJoinerStream is the whole cycle: impressions, a third of them
// labelled a few seconds later, and a Flush every second of event time.
func BenchmarkJoinerStream(b *testing.B) {
	j, s := newBenchJoiner(b), newBenchStream()
	const lag = 10_000 // labels come 2s of event time after the impression
	step := func(i int) int {
		j.Observe(s.impression(i))
		n := 0
		if k := i - lag; k >= 0 && k%3 == 0 {
			im := s.impression(k)
			typ := event.Complete
			if k%2 == 0 {
				typ = event.Skip
			}
			j.Observe(event.Event{Type: typ, UserID: im.UserID, VideoID: im.VideoID, TS: s.t0.Add(time.Duration(i) * benchEvery)})
		}
		if i%5000 == 0 {
			n = len(j.Flush(j.Watermark()))
		}
		return n
	}
	i := 0
	for ; i < 4*benchMaxPending; i++ { // steady state, as above
		step(i)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		step(i)
		i++
	}
}

// decodedImpressions returns n impressions as the joiner gets them in
// production: decoded from the events stream, every field its own
// allocation.
func decodedImpression(i int) event.Event {
	u, round := i%benchUsers, i/benchUsers
	line := fmt.Sprintf(`{"event_id":"0190c6a4-5e1b-7c3d-8f00-%012d","user_id":"user-%06d","video_id":"video-%08d","type":"impression",`+
		`"ts":%q,"request_id":"0190c6a4-5e1b-7c3d-9e00-%012d","category":"comedy","tags":["funny","pets","cats"],`+
		`"uploader_id":"up-%05d","branch":"i2i","variant":"control","features":%s}`,
		i, u, (u+round)%benchVideos, joinT0.Add(time.Duration(i)*benchEvery).Format(time.RFC3339Nano), i/10, i%977, benchFeatureJSON(i))
	var e event.Event
	if err := json.Unmarshal([]byte(line), &e); err != nil {
		panic(err)
	}
	return e
}

// measurePendingHeap fills a joiner with n pending impressions decoded
// like production's and returns the live heap objects and bytes it holds
// per pending impression.
func measurePendingHeap(n int) (objects, bytes float64) {
	cfg := DefaultJoinConfig()
	cfg.MaxPending = n
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	j, err := NewJoiner(cfg)
	if err != nil {
		panic(err)
	}
	for i := range n {
		j.Observe(decodedImpression(i))
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	if st := j.Stats(); st.Pending != n {
		panic(fmt.Sprintf("pending = %d, want %d", st.Pending, n))
	}
	runtime.KeepAlive(j)
	return float64(int64(after.HeapObjects)-int64(before.HeapObjects)) / float64(n),
		float64(int64(after.HeapAlloc)-int64(before.HeapAlloc)) / float64(n)
}

// BenchmarkJoinerHeapObjects reports what the garbage collector has to
// trace for a full joiner: its mark phase is proportional to live objects.
func BenchmarkJoinerHeapObjects(b *testing.B) {
	var objects, bytes float64
	for range b.N {
		objects, bytes = measurePendingHeap(benchMaxPending)
	}
	b.ReportMetric(objects, "objects/pending")
	b.ReportMetric(bytes, "B/pending")
}
