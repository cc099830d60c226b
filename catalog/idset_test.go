package catalog

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"
)

func TestIDSetMatchesAMap(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var s IDSet
	for round, n := range []int{0, 1, 7, 100, 3000, 5} { // reused across sizes, as the feed's pool does
		s.Reset(n / 2) // undersized on purpose: Add must grow
		want := map[uint64]bool{}
		for range n {
			k := IDKey(fmt.Sprint("v", rng.IntN(2*n+1)))
			s.Add(k)
			want[k] = true
		}
		if s.Len() != len(want) {
			t.Fatalf("round %d: Len %d, want %d", round, s.Len(), len(want))
		}
		for i := range 4*n + 10 {
			k := IDKey(fmt.Sprint("v", i))
			if s.Has(k) != want[k] {
				t.Fatalf("round %d: Has(v%d) = %v", round, i, s.Has(k))
			}
		}
	}
}

func TestVideoKeyIsTheIDKey(t *testing.T) {
	raw := &Video{ID: "abc"}
	normalized := &Video{ID: "abc"}
	normalized.Normalize(time.Now())
	if raw.Key() != IDKey("abc") || normalized.Key() != IDKey("abc") || IDKey("abc") == IDKey("abd") {
		t.Fatal("a video's key must be its id's IDKey, normalised or not")
	}
	var s IDSet
	s.Add(normalized.Key())
	if !s.HasVideo(raw) || s.HasVideo(&Video{ID: "abd"}) {
		t.Fatal("HasVideo must find videos by id")
	}
}

func BenchmarkIDSetHas(b *testing.B) {
	keys := make([]uint64, 500)
	m := map[string]bool{}
	var s IDSet
	s.Reset(len(keys))
	for i := range keys {
		id := fmt.Sprint("video-", i)
		keys[i] = IDKey(id)
		if i%2 == 0 {
			s.Add(keys[i])
			m[id] = true
		}
	}
	b.Run("IDSet", func(b *testing.B) {
		for i := 0; b.Loop(); i++ {
			_ = s.Has(keys[i%len(keys)])
		}
	})
	ids := make([]string, len(keys))
	for i := range ids {
		ids[i] = fmt.Sprint("video-", i)
	}
	b.Run("map", func(b *testing.B) {
		for i := 0; b.Loop(); i++ {
			_ = m[ids[i%len(ids)]]
		}
	})
}
