package model

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
)

// The benchmark shapes mirror rank's DeepFM layout: 7 user/context
// fields shared per request, then 16 candidate fields, one of them
// multi-hot (tags).
const (
	benchUserFields = 7
	benchFields     = 23
)

func benchExample(rng *rand.Rand) [][]uint32 {
	fields := make([][]uint32, benchFields)
	// Cardinalities: user, age, gender, region, device, engagement,
	// activity | video, uploader, category, tags, duration, freshness, ctr,
	// completion, interaction, six affinity buckets, follows.
	card := []int{50000, 8, 3, 20, 4, 20, 24, 200000, 20000, 30, 2000, 10, 9, 20, 20, 20, 21, 21, 21, 21, 21, 21, 2}
	for f := range fields {
		n := 1
		if f == 10 { // tags
			n = 1 + rng.IntN(5)
		}
		for range n {
			fields[f] = append(fields[f], uint32(f)<<24^uint32(rng.IntN(card[f]))*2654435761)
		}
	}
	return fields
}

func benchConfig(dim int) Config {
	return Config{Kind: DeepFM, Fields: benchFields, Buckets: 1 << 20, Dim: dim, Hidden: []int{64, 32}, InitStd: 0.05, Seed: 1}
}

func BenchmarkTrain(b *testing.B) {
	for _, dim := range []int{8, 16} {
		for _, workers := range []int{1, 2, 4} {
			b.Run(fmt.Sprintf("deepfm/dim=%d/workers=%d", dim, workers), func(b *testing.B) {
				rng := rand.New(rand.NewPCG(1, 1))
				d := NewDataset(benchFields)
				for i := range 8192 {
					_ = d.Add(Example{Fields: benchExample(rng), Label: float32(i % 2)})
				}
				m, _ := New(benchConfig(dim))
				tc := DefaultTrainConfig()
				tc.Epochs = 1
				tc.Workers = workers
				tr, err := NewTrainer(m, tc)
				if err != nil {
					b.Fatal(err)
				}
				b.ReportAllocs()
				b.ResetTimer()
				for b.Loop() {
					if _, err := tr.Fit(context.Background(), d); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(b.N*d.Len())/b.Elapsed().Seconds(), "samples/s")
			})
		}
	}
}

// BenchmarkScore500 is one feed request: SetShared once, then 500
// candidates, on one goroutine.
func BenchmarkScore500(b *testing.B) {
	for _, dim := range []int{8, 16} {
		b.Run(fmt.Sprintf("deepfm/dim=%d", dim), func(b *testing.B) {
			rng := rand.New(rand.NewPCG(2, 2))
			m, _ := New(benchConfig(dim))
			randomizeSmall(m, rng)
			cands := make([][][]uint32, 500)
			for i := range cands {
				cands[i] = benchExample(rng)
			}
			user := benchExample(rng)[:benchUserFields]
			row := make([][]uint32, benchFields)
			batch := m.NewBatch(benchUserFields)
			var sink float32
			b.ReportAllocs()
			for b.Loop() {
				copy(row, user)
				batch.SetShared(row)
				for _, c := range cands {
					copy(row[benchUserFields:], c[benchUserFields:])
					sink += batch.Score(row).Prob()
				}
			}
			_ = sink
		})
	}
}

// randomizeSmall makes activations realistic (about half the ReLUs on).
func randomizeSmall(m *Model, rng *rand.Rand) {
	for i := range m.params[:m.denseLen] {
		m.params[i] = float32(rng.NormFloat64() * 0.1)
	}
	m.refreshDerived()
}
