package rank

import (
	"context"
	"encoding/json"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"reelfeed/catalog"
	"reelfeed/event"
	"reelfeed/feature"
	"reelfeed/rank/model"
)

func testArch() ModelArch {
	return ModelArch{Buckets: 1 << 14, Dim: 8, Hidden: []int{32, 16}, InitStd: 0.05}
}

func newTestModel(t testing.TB, kind model.Kind) *model.Model {
	t.Helper()
	m, err := model.New(featureModelConfig(kind, testArch(), 1))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestBuckets(t *testing.T) {
	cases := []struct {
		name string
		got  int
		want int
	}{
		{"age unknown", ageBucket(0), 0},
		{"age 17", ageBucket(17), 1},
		{"age 18", ageBucket(18), 2},
		{"age 70", ageBucket(70), 6},
		{"duration unknown", durationBucket(0), 0},
		{"duration 5s", durationBucket(5000), 1},
		{"duration 5.001s", durationBucket(5001), 2},
		{"duration 1h", durationBucket(3600e3), 9},
		{"fresh 10m", freshnessBucket(10 * time.Minute), 1},
		{"fresh published in the future", freshnessBucket(-time.Hour), 1},
		{"fresh 2d", freshnessBucket(48 * time.Hour), 4},
		{"fresh 1y", freshnessBucket(365 * 24 * time.Hour), 8},
		{"rate 0", rateBucket(0), 1},
		{"rate 0.01", rateBucket(0.01), 3},
		{"rate 0.04", rateBucket(0.04), 5},
		{"rate 0.30", rateBucket(0.30), 11},
		{"rate 1", rateBucket(1), rateBuckets},
		{"activity none", activityBucket(0), 0},
		{"activity 1", activityBucket(1), 1},
		{"activity 200", activityBucket(200), 8},
		{"affinity none", affinityBucket(0), 0},
		{"affinity tiny positive", affinityBucket(0.001), 1},
		{"affinity top", affinityBucket(1), 10},
		{"affinity negative", affinityBucket(-0.55), -6},
		{"affinity clamps", affinityBucket(-3), -10},
	}
	for _, c := range cases {
		if c.got != c.want {
			t.Errorf("%s: bucket %d, want %d", c.name, c.got, c.want)
		}
	}
}

// servingRows computes the rows exactly as DeepFMScorer.Score does.
func servingRows(fx FeatureExtractor, q *Query, it *Item) [][]uint32 {
	var req requestFeatures
	fx.prepare(q, &req)
	rows := newRows()
	req.lf.putUserRows(rows)
	fx.fillItem(&req, q, it, &req.lf)
	req.lf.putItemRows(rows)
	return rows
}

func TestLoggedFeaturesRebuildServingRows(t *testing.T) {
	w := newSimWorld(1, 30, 200)
	fx := NewFeatureExtractor(feature.DefaultSmoothing())
	for i := range 200 {
		q, it, _ := w.impression(i)
		raw := fx.Log(q, &it)
		lf, err := ParseLoggedFeatures(raw)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := lf.Rows(), servingRows(fx, q, &it); !slices.EqualFunc(got, want, slices.Equal) {
			t.Fatalf("impression %d: rows rebuilt from %s differ from serving rows", i, raw)
		}
	}
}

// LogPage writes exactly what Log (encoding/json) writes, item for item,
// including for strings that need escaping.
func TestLogPageMatchesLog(t *testing.T) {
	w := newSimWorld(1, 30, 200)
	fx := NewFeatureExtractor(feature.DefaultSmoothing())
	for i := range 100 {
		q, it, _ := w.impression(i)
		if i%10 == 0 {
			q.Region, q.Device = "quo\"te\n", "bad\xffutf8"
			q.User = &catalog.User{Gender: "x", Follows: []string{it.Video.UploaderID}}
		}
		items := []*Item{&it, &it}
		page := fx.LogPage(nil, q, items)
		if len(page) != 2 {
			t.Fatalf("LogPage returned %d entries for 2 items", len(page))
		}
		want := fx.Log(q, &it)
		for _, got := range page {
			if string(got) != string(want) {
				t.Fatalf("impression %d:\n got %s\nwant %s", i, got, want)
			}
		}
	}
}

func TestExtractFeatures(t *testing.T) {
	now := time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)
	p := emptyProfile("u1")
	p.LongTerm.Categories["pets"] = 8
	p.LongTerm.Categories["news"] = -2
	p.ShortTerm.Tags["cat"] = 3
	p.ShortTerm.Tags["dog"] = 1
	p.LongTerm.Uploaders["up9"] = 5
	q := &Query{UserID: "u1", Profile: p, Now: now, Region: "eu",
		User: &catalog.User{ID: "u1", Age: 30, Gender: "f", Region: "us", Device: "ios", Follows: []string{"up9"}}}
	it := Item{Video: &catalog.Video{ID: "v1", UploaderID: "up9", Category: "pets", Tags: []string{"cat"},
		DurationMs: 20_000, PublishedAt: now.Add(-2 * time.Hour)}}
	p.Counts[event.Impression] = 40
	p.Counts[event.Complete] = 9
	p.Counts[event.Like] = 1
	sm := feature.Smoothing{PriorCTR: 0.3, PriorCompletion: 0.3, PriorInteraction: 0.05, Strength: 20}
	lf := NewFeatureExtractor(sm).Extract(q, &it)
	want := LoggedFeatures{
		Version: FeaturesVersion, User: "u1", Age: 3, Gender: "f",
		Region:     "eu", // the request's region wins over the declared one
		Device:     "ios",
		Engagement: 10, // (10 + 0.1·10) / (40 + 10) = 0.22
		Activity:   6,  // 40 impressions: 1 + ⌊log2 40⌋
		Video:      "v1", Uploader: "up9", Category: "pets", Tags: []string{"cat"},
		Duration: 4, Freshness: 2,
		CTR: 11, Completion: 11, Interaction: 5, // the priors 0.3, 0.3, 0.05 with no traffic
		TagAffinity:      [2]int{10, 0}, // cat is the strongest short-term tag
		CategoryAffinity: [2]int{0, 10},
		UploaderAffinity: [2]int{0, 10},
		Follows:          true,
	}
	got, _ := json.Marshal(lf)
	exp, _ := json.Marshal(want)
	if string(got) != string(exp) {
		t.Errorf("features\n got %s\nwant %s", got, exp)
	}
	// A disliked category shows up negative.
	it.Video.Category = "news"
	if lf := NewFeatureExtractor(sm).Extract(q, &it); lf.CategoryAffinity[1] != -3 {
		t.Errorf("disliked category affinity = %v, want long-term -3", lf.CategoryAffinity)
	}
}

func TestParseLoggedFeaturesRejectsOtherVersions(t *testing.T) {
	for _, raw := range []string{``, `{`, `{"v":2,"user":"u"}`, `{"user":"u"}`} {
		if _, err := ParseLoggedFeatures(json.RawMessage(raw)); err == nil {
			t.Errorf("%q accepted", raw)
		}
	}
}

func testItems(w *simWorld, n int) (*Query, []Item) {
	q, _, _ := w.impression(0)
	items := make([]Item, n)
	for i := range items {
		v := w.videos[i%len(w.videos)]
		items[i] = Item{Video: v, Stats: w.stats(v)}
	}
	return q, items
}

func TestDeepFMScorerScoresWhatTrainingSees(t *testing.T) {
	w := newSimWorld(2, 20, 300)
	m := newTestModel(t, model.DeepFM)
	s, err := NewDeepFMScorer(m, feature.DefaultSmoothing())
	if err != nil {
		t.Fatal(err)
	}
	q, items := testItems(w, 300)
	q.Debug = true
	if err := s.Score(context.Background(), q, items); err != nil {
		t.Fatal(err)
	}
	for i := range items {
		it := &items[i]
		lf, err := ParseLoggedFeatures(s.Log(q, it))
		if err != nil {
			t.Fatal(err)
		}
		want, _ := m.Predict(lf.Rows())
		if math.Abs(it.Score-float64(want)) > 1e-5 {
			t.Fatalf("item %d: served score %v, model on logged features %v", i, it.Score, want)
		}
		parts := it.Parts
		sum := parts[PartBias] + parts[PartFMFirst] + parts[PartFMSecond] + parts[PartDNN]
		if math.Abs(sum-parts[PartLogit]) > 1e-5 || math.Abs(1/(1+math.Exp(-parts[PartLogit]))-it.Score) > 1e-6 {
			t.Fatalf("item %d: parts %v do not explain score %v", i, parts, it.Score)
		}
	}
}

func TestDeepFMScorerWithoutDebugLeavesPartsNil(t *testing.T) {
	w := newSimWorld(3, 5, 20)
	s, _ := NewDeepFMScorer(newTestModel(t, model.DeepFM), feature.DefaultSmoothing())
	q, items := testItems(w, 20)
	items = append(items, Item{}) // no video: scored, not a panic
	if err := s.Score(context.Background(), q, items); err != nil {
		t.Fatal(err)
	}
	for _, it := range items {
		if it.Parts != nil || !(it.Score > 0 && it.Score < 1) {
			t.Fatalf("item %+v: score %v parts %v", it.Video, it.Score, it.Parts)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.Score(ctx, q, items); err == nil {
		t.Error("Score ignored a cancelled context")
	}
}

func TestDeepFMScorerDoesNotAllocatePerCandidate(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are meaningless under the race detector")
	}
	w := newSimWorld(4, 5, 500)
	s, _ := NewDeepFMScorer(newTestModel(t, model.DeepFM), feature.DefaultSmoothing())
	q, items := testItems(w, 500)
	ctx := context.Background()
	allocs := testing.AllocsPerRun(20, func() {
		if err := s.Score(ctx, q, items); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("scoring 500 candidates allocates %.1f times per request, want 0", allocs)
	}
}

func TestNewDeepFMScorerRejectsOtherLayouts(t *testing.T) {
	m, _ := model.New(model.Config{Kind: model.DeepFM, Fields: 3, Buckets: 64, Dim: 4, Hidden: []int{4}})
	if _, err := NewDeepFMScorer(m, feature.DefaultSmoothing()); err == nil || !strings.Contains(err.Error(), "fields") {
		t.Errorf("err = %v, want a field-count mismatch", err)
	}
}

// BenchmarkDeepFMScore500 is one feed request with the default
// architecture: a realistic profile (200 interests per map), 500
// candidates, on one goroutine.
func BenchmarkDeepFMScore500(b *testing.B) {
	w := newSimWorld(5, 10, 2000)
	arch := DefaultTrainConfig().Arch
	m, err := model.New(featureModelConfig(model.DeepFM, arch, 1))
	if err != nil {
		b.Fatal(err)
	}
	s, _ := NewDeepFMScorer(m, feature.DefaultSmoothing())
	q, items := testItems(w, 500)
	for i := range 200 {
		for _, in := range []map[string]float64{q.Profile.ShortTerm.Tags, q.Profile.LongTerm.Tags, q.Profile.LongTerm.Uploaders} {
			in["x"+string(rune('a'+i%26))+string(rune('a'+i/26))] = float64(i)
		}
	}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if err := s.Score(ctx, q, items); err != nil {
			b.Fatal(err)
		}
	}
}
