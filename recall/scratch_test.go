package recall

import (
	"testing"

	"reelfeed/catalog"
)

func TestScratchListsNeverOverlap(t *testing.T) {
	var s Scratch
	req := &Request{Scratch: &s}
	videos := make([]catalog.Video, 600)
	fill := func(list []Candidate, from, n int) []Candidate {
		for i := range n {
			list = append(list, Candidate{Video: &videos[from+i], Score: float64(from + i)})
		}
		return list
	}
	for round := range 3 { // reused after Reset
		a := fill(req.candidates(10), 0, 10)
		b := fill(req.candidates(100), 100, 150) // past its room: reallocates, never into c
		c := fill(req.candidates(300), 300, 300) // more than the buffer holds: a new one
		for name, l := range map[string]struct {
			list    []Candidate
			from, n int
		}{"a": {a, 0, 10}, "b": {b, 100, 150}, "c": {c, 300, 300}} {
			if len(l.list) != l.n {
				t.Fatalf("round %d: list %s has %d, want %d", round, name, len(l.list), l.n)
			}
			for i, cand := range l.list {
				if cand.Video != &videos[l.from+i] {
					t.Fatalf("round %d: list %s item %d was overwritten", round, name, i)
				}
			}
		}
		s.Reset()
	}
	if allocs := testing.AllocsPerRun(100, func() {
		req.candidates(10)
		req.candidates(100)
		req.candidates(300)
		s.Reset()
	}); allocs != 0 {
		t.Errorf("a warmed-up scratch allocated %.0f times per request", allocs)
	}
}

func TestRequestWithoutScratchAllocates(t *testing.T) {
	req := &Request{}
	a, b := req.candidates(4), req.candidates(4)
	a = append(a, Candidate{Score: 1})
	b = append(b, Candidate{Score: 2})
	if a[0].Score != 1 || b[0].Score != 2 {
		t.Fatal("lists share memory")
	}
}
