package feature_test

import (
	"math"
	"testing"

	"reelfeed/event"
	"reelfeed/feature"
)

func counts(pairs map[event.Type]int64) event.Counts {
	var c event.Counts
	for t, n := range pairs {
		c[t] = n
	}
	return c
}

func TestSmoothing(t *testing.T) {
	s := feature.DefaultSmoothing()
	near := func(got, want, tol float64) bool { return math.Abs(got-want) <= tol }
	cases := []struct {
		name      string
		rate      func(event.Counts) float64
		c         event.Counts
		want, tol float64
	}{
		{"CTR with no data is the prior", s.CTR, event.Counts{}, s.PriorCTR, 1e-12},
		{"CTR of 1/1 stays near the prior", s.CTR, counts(map[event.Type]int64{event.Impression: 1, event.Play: 1}), (1 + s.PriorCTR*s.Strength) / (1 + s.Strength), 1e-12},
		{"CTR of 1000/2000 is about 0.5", s.CTR, counts(map[event.Type]int64{event.Impression: 2000, event.Play: 1000}), 0.5, 0.005},
		{"CTR of 0/500 approaches 0", s.CTR, counts(map[event.Type]int64{event.Impression: 500}), s.PriorCTR * s.Strength / (500 + s.Strength), 1e-12},
		{"completion with no plays is the prior", s.CompletionRate, counts(map[event.Type]int64{event.Impression: 50}), s.PriorCompletion, 1e-12},
		{"completion of 900/1000 is about 0.9", s.CompletionRate, counts(map[event.Type]int64{event.Play: 1000, event.Complete: 900}), 0.9, 0.02},
		{"interaction sums likes, comments and shares", s.InteractionRate,
			counts(map[event.Type]int64{event.Play: 980, event.Like: 100, event.Comment: 50, event.Share: 30, event.Skip: 400}), (180 + s.PriorInteraction*s.Strength) / (980 + s.Strength), 1e-12},
		{"interaction ignores follows and dislikes", s.InteractionRate,
			counts(map[event.Type]int64{event.Play: 80, event.Follow: 40, event.Dislike: 40}), (0 + s.PriorInteraction*s.Strength) / (80 + s.Strength), 1e-12},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := c.rate(c.c); !near(got, c.want, c.tol) {
				t.Errorf("got %.5f, want %.5f ± %g", got, c.want, c.tol)
			}
		})
	}

	t.Run("one lucky play ranks below a proven video", func(t *testing.T) {
		lucky := s.CTR(counts(map[event.Type]int64{event.Impression: 1, event.Play: 1}))
		proven := s.CTR(counts(map[event.Type]int64{event.Impression: 10000, event.Play: 6000}))
		if lucky >= proven {
			t.Errorf("1/1 CTR %.3f >= 6000/10000 CTR %.3f", lucky, proven)
		}
	})
	t.Run("zero strength is the raw rate", func(t *testing.T) {
		raw := feature.Smoothing{PriorCTR: 0.3}
		if got := raw.CTR(counts(map[event.Type]int64{event.Impression: 4, event.Play: 1})); got != 0.25 {
			t.Errorf("got %v, want 0.25", got)
		}
	})
}
