package rank

import (
	"testing"
)

func TestBoostsApply(t *testing.T) {
	b, err := NewBoosts(map[string]float64{"Comedy ": 1.2}, map[string]float64{"cats": 2, "dogs": 1.5})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		category string
		tags     []string
		score    float64
		want     float64
	}{
		{"category boost (key normalised)", "comedy", nil, 1, 1.2},
		{"tag boost", "news", []string{"cats"}, 1, 2},
		{"factors multiply", "comedy", []string{"cats", "dogs"}, 1, 1.2 * 2 * 1.5},
		{"untouched", "news", []string{"birds"}, 0.7, 0.7},
		{"negative score still moves up", "comedy", nil, -1.2, -1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			items := []Item{{Video: fmVideo("v", tc.category, tc.tags...), Score: tc.score}}
			b.Apply(items, true)
			if diff := items[0].Score - tc.want; diff > 1e-9 || diff < -1e-9 {
				t.Fatalf("score %v, want %v", items[0].Score, tc.want)
			}
			if tc.want != tc.score && items[0].Parts[BoostPart] == 0 {
				t.Fatal("boost factor not explained in Parts")
			}
		})
	}
}

func TestBoostsEmptyAndInvalid(t *testing.T) {
	var nilBoosts *Boosts
	items := []Item{{Video: fmVideo("v", "comedy"), Score: 1}}
	nilBoosts.Apply(items, true)
	if items[0].Score != 1 || items[0].Parts != nil {
		t.Fatal("nil boosts changed an item")
	}
	for _, f := range []float64{0, -1, MaxBoostFactor + 1} {
		if _, err := NewBoosts(map[string]float64{"x": f}, nil); err == nil {
			t.Errorf("factor %v accepted", f)
		}
	}
}

func BenchmarkBoostsApply500(b *testing.B) {
	bo, _ := NewBoosts(map[string]float64{"c1": 1.2, "c2": 0.8}, map[string]float64{"t1": 1.1})
	items := make([]Item, 500)
	for i := range items {
		items[i] = Item{Video: fmVideo("v", []string{"c1", "c2", "c3"}[i%3], "t1", "t2"), Score: 1}
	}
	b.ReportAllocs()
	for b.Loop() {
		bo.Apply(items, false)
	}
}
