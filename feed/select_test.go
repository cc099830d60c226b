package feed

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"reelfeed/catalog"
	"reelfeed/filter"
	"reelfeed/rank"
)

func TestScaleSlots(t *testing.T) {
	tests := []struct {
		name  string
		raw   []int
		total int
		count int
		want  []int
	}{
		{"plan size", []int{4, 4, 1, 1}, 10, 10, []int{4, 4, 1, 1}},
		{"double page", []int{4, 4, 1, 1}, 10, 20, []int{8, 8, 2, 2}},
		{"half page, largest remainder", []int{4, 4, 1, 1}, 10, 5, []int{2, 2, 1, 0}},
		{"one item", []int{4, 4, 1, 1}, 10, 1, []int{1, 0, 0, 0}},
		{"unknown branches' share stays free", []int{3, 3}, 10, 10, []int{3, 3}},
		{"empty plan", []int{0, 0}, 0, 10, []int{0, 0}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := scaleSlots(nil, tc.raw, tc.total, tc.count)
			if !slices.Equal(got, tc.want) {
				t.Fatalf("scaleSlots(%v, %d, %d) = %v, want %v", tc.raw, tc.total, tc.count, got, tc.want)
			}
		})
	}
}

// selCand is a ranked candidate for selector tests.
type selCand struct {
	id, category, uploader string
	kind                   catalog.Kind
	branch                 string
	also                   []string // other proposing branches
	score                  float64
}

func TestSelectRanked(t *testing.T) {
	names := []string{"tag", "hot", "new"}
	index := map[string]int{"tag": 0, "hot": 1, "new": 2}
	c := func(id, branch string, score float64, mods ...func(*selCand)) selCand {
		sc := selCand{id: id, category: "cat-" + id, uploader: "up-" + id, kind: catalog.KindVideo, branch: branch, score: score}
		for _, m := range mods {
			m(&sc)
		}
		return sc
	}
	cat := func(x string) func(*selCand) { return func(s *selCand) { s.category = x } }
	up := func(x string) func(*selCand) { return func(s *selCand) { s.uploader = x } }
	kind := func(k catalog.Kind) func(*selCand) { return func(s *selCand) { s.kind = k } }
	also := func(b ...string) func(*selCand) { return func(s *selCand) { s.also = b } }
	caps := CapConfig{Category: 1, Uploader: 1, Special: 1}

	tests := []struct {
		name  string
		cands []selCand
		slots []int
		count int
		caps  CapConfig
		want  []string // "id:branch" in selection order
	}{
		{"every branch gets its reserved slots despite lower scores",
			[]selCand{c("t1", "tag", 9), c("t2", "tag", 8), c("t3", "tag", 7), c("h1", "hot", 2), c("n1", "new", 1)},
			[]int{1, 1, 1}, 3, caps, []string{"t1:tag", "h1:hot", "n1:new"}},
		{"unfilled slots go to the best remaining",
			[]selCand{c("t1", "tag", 9), c("t2", "tag", 8), c("h1", "hot", 2)},
			[]int{1, 0, 2}, 3, caps, []string{"t1:tag", "t2:tag", "h1:hot"}},
		{"a video proposed twice takes a free slot of another branch and is credited to it",
			[]selCand{c("t1", "tag", 10), c("x", "tag", 9, also("hot")), c("h2", "hot", 1)},
			[]int{1, 1, 0}, 2, caps, []string{"t1:tag", "x:hot"}},
		{"credited branch preferred when it has a slot",
			[]selCand{c("x", "hot", 9, also("tag")), c("t2", "tag", 8)},
			[]int{1, 1, 0}, 2, caps, []string{"x:hot", "t2:tag"}},
		{"category cap",
			[]selCand{c("a", "tag", 9, cat("cooking")), c("b", "tag", 8, cat("cooking")), c("d", "tag", 7, cat("cooking")), c("e", "hot", 1)},
			[]int{2, 1, 0}, 4, CapConfig{Category: 0.5, Uploader: 1, Special: 1}, []string{"a:tag", "b:tag", "e:hot"}},
		{"uploader cap",
			[]selCand{c("a", "tag", 9, up("u")), c("b", "tag", 8, up("u")), c("d", "tag", 7)},
			[]int{3, 0, 0}, 3, CapConfig{Category: 1, Uploader: 0.3, Special: 1}, []string{"a:tag", "d:tag"}},
		{"special kinds cap",
			[]selCand{c("m", "tag", 9, kind(catalog.KindMusic)), c("i", "tag", 8, kind(catalog.KindImageSet)), c("v", "tag", 1)},
			[]int{3, 0, 0}, 3, CapConfig{Category: 1, Uploader: 1, Special: 0.3}, []string{"m:tag", "v:tag"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cands := make([]filter.Candidate, len(tc.cands))
			items := make([]rank.Item, len(tc.cands))
			for i, sc := range tc.cands {
				v := &catalog.Video{ID: sc.id, Category: sc.category, UploaderID: sc.uploader, Kind: sc.kind}
				mask := uint64(1) << index[sc.branch]
				for _, b := range sc.also {
					mask |= 1 << index[b]
				}
				cands[i] = filter.Candidate{Video: v, Branch: sc.branch, Branches: mask}
				items[i] = rank.Item{Video: v, Branch: sc.branch, Score: sc.score}
			}
			var pg page
			pg.reset(tc.count, tc.caps)
			used := make([]bool, len(items))
			order, _ := rankedOrder(nil, nil, items)
			selectRanked(&pg, cands, items, order, slices.Clone(tc.slots), names, index, used)
			var got []string
			for _, p := range pg.picks {
				got = append(got, p.item.Video.ID+":"+p.branch)
			}
			if !slices.Equal(got, tc.want) {
				t.Fatalf("selected %v, want %v", got, tc.want)
			}
		})
	}
}

func TestOrderPageReadmittedLast(t *testing.T) {
	mk := func(id string, score float64, readmitted bool) pick {
		return pick{cand: filter.Candidate{Readmitted: readmitted, LastShown: time.Now()},
			item: rank.Item{Video: &catalog.Video{ID: id}, Score: score}}
	}
	picks := []pick{mk("seen-high", 9, true), mk("low", 1, false), mk("high", 5, false), mk("seen-low", 0, true)}
	orderPage(picks)
	var got []string
	for _, p := range picks {
		got = append(got, p.item.Video.ID)
	}
	if want := []string{"high", "low", "seen-high", "seen-low"}; !slices.Equal(got, want) {
		t.Fatalf("order %v, want %v", got, want)
	}
}

func TestCapOf(t *testing.T) {
	for _, tc := range []struct {
		share float64
		count int
		want  int
	}{{0.5, 10, 5}, {0.2, 10, 2}, {0.2, 1, 1}, {0.5, 3, 2}, {1, 7, 7}, {0.1, 10, 1}} {
		if got := capOf(tc.share, tc.count); got != tc.want {
			t.Errorf("capOf(%v, %d) = %d, want %d", tc.share, tc.count, got, tc.want)
		}
	}
}

func BenchmarkSelectRanked500(b *testing.B) {
	names := []string{"tag", "hot", "new"}
	index := map[string]int{"tag": 0, "hot": 1, "new": 2}
	cands := make([]filter.Candidate, 500)
	items := make([]rank.Item, 500)
	for i := range items {
		v := &catalog.Video{ID: fmt.Sprint(i), Category: fmt.Sprint(i % 7), UploaderID: fmt.Sprint(i % 90), Kind: catalog.KindVideo}
		cands[i] = filter.Candidate{Video: v, Branch: names[i%3], Branches: 1 << (i % 3)}
		items[i] = rank.Item{Video: v, Score: float64(i%37) / 37}
	}
	var pg page
	used := make([]bool, len(items))
	var order []int32
	b.ReportAllocs()
	for b.Loop() {
		pg.reset(10, DefaultConfig().Caps)
		clear(used)
		order, _ = rankedOrder(order, nil, items)
		selectRanked(&pg, cands, items, order, []int{4, 4, 2}, names, index, used)
	}
}
