package recall

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"reelfeed/catalog"
	"reelfeed/profile"
)

// widenRecallInterests is the local path recallInterests had before it
// scanned: search each key for twice its share, then re-search four times
// wider from the start while the results were mostly seen, up to maxScan.
// The scan must recall exactly the same candidates.
func widenRecallInterests(s videoSearcher, req *Request, ir *interestRecall, keys []interestKey,
	quota, maxScan int, setKey func(q *catalog.Query, key []string)) {
	if quota <= 0 || len(keys) == 0 {
		return
	}
	var total float64
	for _, k := range keys {
		total += k.weight
	}
	for _, k := range keys {
		share := max(1, int(math.Ceil(float64(quota)*k.weight/total)))
		limit, taken := 2*share, 0
		for from := 0; ; {
			q := catalog.Query{Region: req.Region, Sort: catalog.SortByQuality, Limit: min(limit, maxScan)}
			setKey(&q, []string{k.key})
			res := s.cat.SearchVideos(q)
			taken += takeInterest(req, ir, res[min(from, len(res)):], share-taken, k.weight)
			if taken >= share || len(res) < limit || limit >= maxScan {
				break
			}
			from, limit = len(res), limit*4
		}
	}
}

func TestRecallInterestsScanMatchesWidening(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 11))
	cat := catalog.New()
	for i := range 3000 {
		v := &catalog.Video{ID: fmt.Sprint("v", i), UploaderID: fmt.Sprint("u", rng.IntN(50)), Category: fmt.Sprint("c", rng.IntN(6)),
			Tags:    []string{fmt.Sprint("t", rng.IntN(40)), fmt.Sprint("t", rng.IntN(40))},
			Quality: float64(rng.IntN(20)) / 20, PublishedAt: time.Unix(int64(rng.IntN(1e6)), 0)}
		if rng.IntN(3) == 0 {
			v.Regions = []string{fmt.Sprint("r", rng.IntN(4))}
		}
		v.Normalize(time.Unix(1e6, 0))
		cat.Upsert(v)
	}
	s, err := newVideoSearcher(cat, cat)
	if err != nil || !s.local {
		t.Fatalf("searcher over the catalog itself is not local: %v", err)
	}
	for round := range 300 {
		p := &profile.Profile{UserID: fmt.Sprint("u", rng.IntN(50)), Played: map[string]time.Time{}, Shown: map[string]time.Time{}}
		seen := rng.Float64() // from a fresh user to one who saw nearly everything
		for i := range 3000 {
			if rng.Float64() < seen {
				p.Shown[fmt.Sprint("v", i)] = time.Time{}
			} else if rng.Float64() < seen/4 {
				p.Played[fmt.Sprint("v", i)] = time.Time{}
			}
		}
		req := &Request{UserID: p.UserID, Profile: p, Region: []string{"", "r1", "r3", "elsewhere"}[rng.IntN(4)]}
		tags, cats := randomInterests(rng, "t", 40, 8), randomInterests(rng, "c", 6, 3)
		quota, maxScan := 1+rng.IntN(200), []int{1, 5, 30, 100, 500}[rng.IntN(5)]
		setTags := func(q *catalog.Query, key []string) { q.Tags = key }
		setCats := func(q *catalog.Query, key []string) { q.Categories = key }

		var want, got interestRecall
		want.init(req, "tag", quota)
		got.init(req, "tag", quota)
		widenRecallInterests(s, req, &want, tags, quota, maxScan, setTags)
		widenRecallInterests(s, req, &want, cats, quota/3, maxScan, setCats)
		if err := s.recallInterests(context.Background(), req, &got, tags, quota, maxScan, setTags); err != nil {
			t.Fatal(err)
		}
		if err := s.recallInterests(context.Background(), req, &got, cats, quota/3, maxScan, setCats); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got.out, want.out) {
			t.Fatalf("round %d (quota %d, max_scan %d, seen %.2f): scanning recalled\n%v\nwidening recalled\n%v",
				round, quota, maxScan, seen, scoredIDs(got.out), scoredIDs(want.out))
		}
	}
}

func randomInterests(rng *rand.Rand, prefix string, pool, most int) []interestKey {
	var keys []interestKey
	for _, i := range rng.Perm(pool)[:rng.IntN(most+1)] {
		keys = append(keys, interestKey{fmt.Sprint(prefix, i), 0.1 + rng.Float64()})
	}
	return keys
}

func scoredIDs(cs []Candidate) []string {
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = fmt.Sprintf("%s:%.3f", c.Video.ID, c.Score)
	}
	return out
}
