package catalog

import (
	"cmp"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// refCatalog is the brute-force model SearchVideos must agree with: every
// live video filtered one by one, sorted by quality desc, then newest first,
// then the later insert first.
type refCatalog struct {
	live map[string]refVideo
	seq  int
}

type refVideo struct {
	v   *Video
	seq int // insertion order: breaks ties like slot numbers do
}

func (r *refCatalog) upsert(v *Video) {
	r.seq++
	r.live[v.ID] = refVideo{v, r.seq}
}

func (r *refCatalog) search(q Query) []*Video {
	var hits []refVideo
	for _, rv := range r.live {
		if refMatch(&q, rv.v) {
			hits = append(hits, rv)
		}
	}
	slices.SortFunc(hits, func(a, b refVideo) int {
		if q.Sort != SortByFresh {
			if c := cmp.Compare(refQuality(b.v), refQuality(a.v)); c != 0 {
				return c
			}
		}
		if c := b.v.PublishedAt.Compare(a.v.PublishedAt); c != 0 {
			return c
		}
		return cmp.Compare(b.seq, a.seq)
	})
	out := make([]*Video, 0, len(hits))
	for _, h := range hits {
		out = append(out, h.v)
	}
	if q.Limit > 0 && len(out) > q.Limit {
		out = out[:q.Limit]
	}
	return out
}

func refQuality(v *Video) float64 {
	if math.IsNaN(v.Quality) {
		return math.Inf(-1)
	}
	return v.Quality
}

func refMatch(q *Query, v *Video) bool {
	if !v.AllowedIn(q.Region) {
		return false
	}
	if !q.PublishedAfter.IsZero() && v.PublishedAt.Before(q.PublishedAfter) {
		return false
	}
	if !q.PublishedBefore.IsZero() && v.PublishedAt.After(q.PublishedBefore) {
		return false
	}
	if len(q.Tags)+len(q.Categories)+len(q.Uploaders) == 0 {
		return true
	}
	for _, t := range q.Tags {
		if slices.Contains(v.Tags, t) {
			return true
		}
	}
	return slices.Contains(q.Categories, v.Category) || slices.Contains(q.Uploaders, v.UploaderID)
}

// randomWorld draws videos and queries from small pools, so that ids are
// replaced, quality and publish times tie, and more regions exist (90) than
// the masks have exact bits.
type randomWorld struct{ rng *rand.Rand }

func (w randomWorld) pick(prefix string, n int) string { return fmt.Sprint(prefix, w.rng.IntN(n)) }

func (w randomWorld) picks(prefix string, pool, most int) []string {
	out := make([]string, w.rng.IntN(most+1))
	for i := range out {
		out[i] = w.pick(prefix, pool)
	}
	return out
}

func (w randomWorld) time() time.Time {
	if w.rng.IntN(20) == 0 {
		return time.Time{} // never set: sorts oldest
	}
	return scanBase.Add(-time.Duration(w.rng.IntN(200)) * time.Hour)
}

func (w randomWorld) video() *Video {
	v := &Video{ID: w.pick("v", 1200), UploaderID: w.pick("u", 30), Category: w.pick("c", 5),
		Tags: w.picks("t", 15, 3), Quality: float64(w.rng.IntN(11)) / 10, PublishedAt: w.time(), Kind: KindVideo}
	if w.rng.IntN(5) >= 2 {
		v.Regions = w.picks("r", 90, 3)[:0]
		for range 1 + w.rng.IntN(3) {
			v.Regions = append(v.Regions, w.pick("r", 90))
		}
	}
	if w.rng.IntN(100) == 0 {
		v.Quality = math.NaN() // Validate rejects it; the index must still order it
	}
	return v
}

func (w randomWorld) query() Query {
	q := Query{Tags: w.picks("t", 16, 3), Categories: w.picks("c", 6, 1), Uploaders: w.picks("u", 31, 3),
		Sort: SortOrder(w.rng.IntN(2)), Limit: []int{1, 5, 20, 100, 100000}[w.rng.IntN(5)]}
	if w.rng.IntN(20) == 0 {
		q.Uploaders = w.picks("u", 31, 60) // more lists than the merge's stack buffer holds
	}
	switch w.rng.IntN(8) {
	case 0, 1:
		q.Region = ""
	case 2:
		q.Region = "nowhere"
	case 3:
		q.Region = fmt.Sprint("r", 70+w.rng.IntN(20)) // likely interned past the exact bits
	default:
		q.Region = w.pick("r", 90)
	}
	if w.rng.IntN(3) == 0 {
		q.PublishedAfter = w.time()
	}
	if w.rng.IntN(3) == 0 {
		q.PublishedBefore = w.time()
	}
	return q
}

// TestSearchVideosMatchesBruteForce drives random catalogs through bulk
// loads, replacing upserts, deletes and compactions, and checks every
// answer, order included, against refCatalog.
func TestSearchVideosMatchesBruteForce(t *testing.T) {
	compacted := 0
	for seed := range uint64(8) {
		w := randomWorld{rand.New(rand.NewPCG(seed, 42))}
		c, ref := New(), &refCatalog{live: map[string]refVideo{}}
		bulk := seed%2 == 0
		if bulk {
			c.BeginBulk()
		}
		for range 1500 {
			v := w.video()
			c.Upsert(v)
			ref.upsert(v)
		}
		if bulk {
			checkUnorderedAgainstRef(t, w, c, ref)
			c.EndBulk()
		}
		checkAgainstRef(t, w, c, ref)
		for round := range 5 {
			for range 600 {
				if w.rng.IntN(5) < 2 {
					id := w.pick("v", 1200)
					if c.Delete(id) != (ref.live[id].v != nil) {
						t.Fatalf("seed %d: Delete(%s) disagrees with the model", seed, id)
					}
					delete(ref.live, id)
					continue
				}
				v := w.video()
				c.Upsert(v)
				ref.upsert(v)
			}
			if c.Len() != len(ref.live) {
				t.Fatalf("seed %d round %d: Len %d, model %d", seed, round, c.Len(), len(ref.live))
			}
			checkAgainstRef(t, w, c, ref)
		}
		if len(c.slots) < ref.seq {
			compacted++
		}
	}
	if compacted == 0 {
		t.Fatal("no catalog was compacted: the test misses maybeCompact")
	}
}

func checkAgainstRef(t *testing.T, w randomWorld, c *Catalog, ref *refCatalog) {
	t.Helper()
	for range 150 {
		q := w.query()
		want := ref.search(q)
		if got := c.SearchVideos(q); !slices.Equal(got, want) {
			t.Fatalf("%+v:\n got  %v\n want %v", q, ids(got), ids(want))
		}
		stop := 1 + w.rng.IntN(10)
		var visited []*Video
		c.ScanVideos(q, func(v *Video) bool {
			visited = append(visited, v)
			return len(visited) < stop
		})
		if !slices.Equal(visited, want[:min(stop, len(want))]) {
			t.Fatalf("%+v, stopping after %d: visited %v, want %v", q, stop, ids(visited), ids(want[:min(stop, len(want))]))
		}
	}
}

// checkUnorderedAgainstRef: during a bulk load the order is undefined, but
// an unlimited scan must still visit every match exactly once.
func checkUnorderedAgainstRef(t *testing.T, w randomWorld, c *Catalog, ref *refCatalog) {
	t.Helper()
	for range 150 {
		q := w.query()
		q.Limit = 0
		want := ids(ref.search(q))
		var got []string
		c.ScanVideos(q, func(v *Video) bool {
			got = append(got, v.ID)
			return true
		})
		slices.Sort(got)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Fatalf("during bulk load, %+v:\n got  %v\n want %v", q, got, want)
		}
	}
}
