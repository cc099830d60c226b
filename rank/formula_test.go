package rank

import (
	"context"
	"fmt"
	"math"
	"testing"
	"time"

	"reelfeed/catalog"
	"reelfeed/event"
	"reelfeed/feature"
	"reelfeed/profile"
)

var fmNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func fmProfile(id string) *profile.Profile {
	return &profile.Profile{
		UserID:    id,
		ShortTerm: profile.Interests{Tags: map[string]float64{}, Categories: map[string]float64{}, Uploaders: map[string]float64{}},
		LongTerm:  profile.Interests{Tags: map[string]float64{}, Categories: map[string]float64{}, Uploaders: map[string]float64{}},
		Played:    map[string]time.Time{}, Positive: map[string]time.Time{}, Shown: map[string]time.Time{},
	}
}

func fmVideo(id, category string, tags ...string) *catalog.Video {
	return &catalog.Video{ID: id, UploaderID: "up-" + id, Category: category, Tags: tags,
		PublishedAt: fmNow.Add(-24 * time.Hour), Kind: catalog.KindVideo, Quality: 0.5}
}

func fmCounts(imp, play, complete, like int64) event.Counts {
	var c event.Counts
	c[event.Impression], c[event.Play], c[event.Complete], c[event.Like] = imp, play, complete, like
	return c
}

type fmParams map[string]map[string]float64

func (p fmParams) Param(variant, name string) (float64, bool) {
	v, ok := p[variant][name]
	return v, ok
}

func mustFmFormula(t testing.TB, params VariantParams) *Formula {
	t.Helper()
	f, err := NewFormula(DefaultFormulaConfig(), params)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// scoreOf scores two items under the same query and says which won.
func TestFormulaOrdersWhatUsersNotice(t *testing.T) {
	fan := fmProfile("fan")
	fan.LongTerm.Categories["cooking"] = 12
	fan.LongTerm.Tags["pasta"] = 8
	fan.ShortTerm.Tags["pasta"] = 3
	fan.LongTerm.Uploaders["up-chef"] = 5

	engaging := feature.Stats{Day: fmCounts(1000, 700, 500, 100), Lifetime: fmCounts(5000, 3500, 2500, 400)}
	dull := feature.Stats{Day: fmCounts(1000, 50, 5, 0), Lifetime: fmCounts(5000, 250, 20, 1)}

	chef := fmVideo("chef", "cooking", "pasta")
	chef.UploaderID = "up-chef"
	old := fmVideo("old", "news")
	old.PublishedAt = fmNow.Add(-30 * 24 * time.Hour)
	fresh := fmVideo("fresh", "news")
	fresh.PublishedAt = fmNow.Add(-time.Hour)
	hiQ := fmVideo("hq", "news")
	hiQ.Quality = 0.95
	loQ := fmVideo("lq", "news")
	loQ.Quality = 0.05

	tests := []struct {
		name          string
		profile       *profile.Profile
		variant       string
		better, worse Item
	}{
		{"interest match beats no match", fan, "",
			Item{Video: chef}, Item{Video: fmVideo("x", "news", "politics")}},
		{"engaging beats dull at equal relevance", fmProfile("u"), "",
			Item{Video: fmVideo("a", "news"), Stats: engaging}, Item{Video: fmVideo("b", "news"), Stats: dull}},
		{"fresh beats old", fmProfile("u"), "", Item{Video: fresh}, Item{Video: old}},
		{"quality breaks ties", fmProfile("u"), "", Item{Video: hiQ}, Item{Video: loQ}},
		{"variant can make quality dominate engagement", fmProfile("u"), "exp:quality",
			Item{Video: hiQ, Stats: dull}, Item{Video: loQ, Stats: engaging}},
	}
	params := fmParams{"exp:quality": {"formula.quality": 50}}
	f := mustFmFormula(t, params)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			items := []Item{tc.better, tc.worse}
			q := &Query{UserID: tc.profile.UserID, Profile: tc.profile, Now: fmNow, Variant: tc.variant}
			if err := f.Score(context.Background(), q, items); err != nil {
				t.Fatal(err)
			}
			if items[0].Score <= items[1].Score {
				t.Fatalf("want %s (%.4f) above %s (%.4f)", items[0].Video.ID, items[0].Score, items[1].Video.ID, items[1].Score)
			}
			if items[0].Parts != nil {
				t.Fatal("Parts filled without Debug")
			}
		})
	}
}

func TestFormulaVariantWithoutOverrideUsesDefaults(t *testing.T) {
	f := mustFmFormula(t, fmParams{"exp:b": {"formula.quality": 50}})
	items := []Item{{Video: fmVideo("a", "news")}}
	q := &Query{Profile: fmProfile("u"), Now: fmNow, Variant: "exp:a"}
	if err := f.Score(context.Background(), q, items); err != nil {
		t.Fatal(err)
	}
	base := items[0].Score
	q.Variant = ""
	if err := f.Score(context.Background(), q, items); err != nil {
		t.Fatal(err)
	}
	if items[0].Score != base {
		t.Fatalf("variant without overrides changed the score: %v vs %v", base, items[0].Score)
	}
}

func TestFormulaDebugPartsExplainScore(t *testing.T) {
	p := fmProfile("u")
	p.ShortTerm.Tags["cats"] = 2
	items := []Item{{Video: fmVideo("a", "pets", "cats"), Stats: feature.Stats{Day: fmCounts(100, 40, 20, 5)}}}
	q := &Query{Profile: p, Now: fmNow, Debug: true}
	if err := mustFmFormula(t, nil).Score(context.Background(), q, items); err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, v := range items[0].Parts {
		sum += v
	}
	if math.Abs(sum-items[0].Score) > 1e-9 {
		t.Fatalf("parts sum %v != score %v (%v)", sum, items[0].Score, items[0].Parts)
	}
	if items[0].Parts["tag_affinity"] <= 0 {
		t.Fatalf("tag affinity not explained: %v", items[0].Parts)
	}
}

func TestNewFormulaRejectsBadConfig(t *testing.T) {
	bad := DefaultFormulaConfig()
	bad.Weights.ShortTermShare = 2
	if _, err := NewFormula(bad, nil); err == nil {
		t.Fatal("share 2 accepted")
	}
	bad = DefaultFormulaConfig()
	bad.FreshnessHalfLife = 0
	if _, err := NewFormula(bad, nil); err == nil {
		t.Fatal("zero half-life accepted")
	}
}

func TestWeightsSet(t *testing.T) {
	var w Weights
	for _, tc := range []struct {
		name string
		v    float64
		ok   bool
	}{
		{"ctr", 2, true}, {"freshness", -1, true}, {"short_term_share", 0.3, true},
		{"short_term_share", 1.5, false}, {"nope", 1, false}, {"ctr", math.NaN(), false},
	} {
		if got := w.Set(tc.name, tc.v); got != tc.ok {
			t.Errorf("Set(%q, %v) = %v, want %v", tc.name, tc.v, got, tc.ok)
		}
	}
	if w.CTR != 2 || w.Freshness != -1 || w.ShortTermShare != 0.3 {
		t.Fatalf("weights not set: %+v", w)
	}
}

func TestUserAffinityNormalisesAndPenalises(t *testing.T) {
	p := fmProfile("u")
	p.LongTerm.Categories["music"] = 40
	p.LongTerm.Categories["news"] = -20
	ua := NewUserAffinity(p)
	if a := ua.Of(fmVideo("m", "music")); a.CategoryLong != 1 {
		t.Fatalf("strongest interest should be 1, got %v", a.CategoryLong)
	}
	if a := ua.Of(fmVideo("n", "news")); a.CategoryLong != -0.5 {
		t.Fatalf("disliked category should be -0.5, got %v", a.CategoryLong)
	}
	nilUA := NewUserAffinity(nil)
	if a := nilUA.Of(fmVideo("m", "music")); a != (Affinity{}) {
		t.Fatalf("nil profile should have no affinity: %+v", a)
	}
}

func BenchmarkFormulaScore500(b *testing.B) {
	p := fmProfile("u")
	for i := range 200 {
		p.LongTerm.Tags[fmt.Sprintf("t%d", i)] = float64(i)
		p.ShortTerm.Tags[fmt.Sprintf("t%d", i*3)] = float64(i)
		p.LongTerm.Categories[fmt.Sprintf("c%d", i%20)] = float64(i)
		p.LongTerm.Uploaders[fmt.Sprintf("up-%d", i)] = 1
	}
	items := make([]Item, 500)
	for i := range items {
		items[i] = Item{Video: fmVideo(fmt.Sprint(i), fmt.Sprintf("c%d", i%30), fmt.Sprintf("t%d", i%300), fmt.Sprintf("t%d", i%70)),
			Stats: feature.Stats{Day: fmCounts(int64(i), int64(i/2), int64(i/4), 1)}}
	}
	f := mustFmFormula(b, fmParams{})
	q := &Query{Profile: p, Now: fmNow, Variant: "exp:a"}
	b.ReportAllocs()
	for b.Loop() {
		if err := f.Score(context.Background(), q, items); err != nil {
			b.Fatal(err)
		}
	}
}
