package model

import (
	"math"
	"slices"
)

// Metrics summarise predictions against labels.
type Metrics struct {
	AUC     float64 `json:"auc"`
	LogLoss float64 `json:"logloss"`
}

// probClip keeps logloss finite for a confident wrong prediction.
const probClip = 1e-7

// LogLoss is the mean binary cross-entropy of probs against labels
// (probabilities clipped to [1e-7, 1-1e-7]); 0 for no examples.
func LogLoss(labels, probs []float32) float64 {
	if len(labels) == 0 {
		return 0
	}
	var s float64
	for i, y := range labels {
		s += ExampleLogLoss(y, probs[i])
	}
	return s / float64(len(labels))
}

// ExampleLogLoss is one example's binary cross-entropy.
func ExampleLogLoss(label, prob float32) float64 {
	p := min(max(float64(prob), probClip), 1-probClip)
	y := float64(label)
	return -(y*math.Log(p) + (1-y)*math.Log(1-p))
}

// AUC is the exact area under the ROC curve: the probability that a random
// positive scores above a random negative, a tie counting one half. Labels
// >= 0.5 are positive. It is NaN when either class is absent.
func AUC(labels, scores []float32) float64 {
	n := len(labels)
	order := make([]int, n)
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int {
		switch sa, sb := scores[a], scores[b]; {
		case sa < sb:
			return -1
		case sa > sb:
			return 1
		}
		return 0
	})
	// Mann-Whitney U with average ranks for ties.
	var pos, neg, rankSum float64
	for i := 0; i < n; {
		j := i
		for j < n && scores[order[j]] == scores[order[i]] {
			j++
		}
		avgRank := float64(i+j+1) / 2 // ranks i+1 .. j
		for k := i; k < j; k++ {
			if labels[order[k]] >= 0.5 {
				pos++
				rankSum += avgRank
			} else {
				neg++
			}
		}
		i = j
	}
	if pos == 0 || neg == 0 {
		return math.NaN()
	}
	return (rankSum - pos*(pos+1)/2) / (pos * neg)
}

// Predict returns the model's probability for every example of d.
func Predict(m *Model, d *Dataset) []float32 {
	b := m.NewBatch(0)
	out := make([]float32, d.Len())
	var rows [][]uint32
	for i := range out {
		rows = d.fieldsOf(i, rows)
		out[i] = b.Score(rows).Prob()
	}
	return out
}

// Evaluate scores d with m and returns its AUC and logloss.
func Evaluate(m *Model, d *Dataset) Metrics {
	probs := Predict(m, d)
	labels := make([]float32, d.Len())
	for i := range labels {
		labels[i] = d.Label(i)
	}
	return Metrics{AUC: AUC(labels, probs), LogLoss: LogLoss(labels, probs)}
}
