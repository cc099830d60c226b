package recall

import (
	"cmp"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

// blendBySorting is the definition blendInterests implements: every
// positive blended interest, sorted strongest first (then by key), cut to n.
func blendBySorting(short, long map[string]float64, share float64, n int) []interestKey {
	var all []interestKey
	mx := func(m map[string]float64) float64 {
		var v float64
		for _, x := range m {
			v = max(v, x)
		}
		if v <= 0 {
			return 0
		}
		return 1 / v
	}
	ss, ls := share*mx(short), (1-share)*mx(long)
	keys := map[string]bool{}
	for k := range short {
		keys[k] = true
	}
	for k := range long {
		keys[k] = true
	}
	for k := range keys {
		if w := ss*short[k] + ls*long[k]; w > 0 {
			all = append(all, interestKey{k, w})
		}
	}
	slices.SortFunc(all, func(a, b interestKey) int {
		if c := cmp.Compare(b.weight, a.weight); c != 0 {
			return c
		}
		return cmp.Compare(a.key, b.key)
	})
	return all[:min(n, len(all))]
}

func TestBlendInterestsKeepsTheStrongestN(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	weights := []float64{-1, 0, 0.5, 1, 1, 2, 3} // ties and negatives on purpose
	for round := range 2000 {
		short, long := map[string]float64{}, map[string]float64{}
		for range rng.IntN(40) {
			short[fmt.Sprint("k", rng.IntN(60))] = weights[rng.IntN(len(weights))]
		}
		for range rng.IntN(40) {
			long[fmt.Sprint("k", rng.IntN(60))] = weights[rng.IntN(len(weights))] * 10
		}
		share, n := rng.Float64(), rng.IntN(12)
		prefix := []interestKey{{"kept", 9}}
		got := blendInterests(slices.Clone(prefix), short, long, share, n)
		want := append(slices.Clone(prefix), blendBySorting(short, long, share, n)...)
		if !slices.Equal(got, want) {
			t.Fatalf("round %d (n %d, share %.2f):\n got %v\nwant %v", round, n, share, got, want)
		}
	}
}
