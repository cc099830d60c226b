package model

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"syscall"
	"testing"
	"time"
)

func threadCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(1, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func TestMinScore(t *testing.T) {
	runtime.LockOSThread()
	for _, dim := range []int{8, 16} {
		for _, shared := range []int{0, benchUserFields} {
			rng := rand.New(rand.NewPCG(2, 2))
			m, _ := New(benchConfig(dim))
			randomizeSmall(m, rng)
			cands := make([][][]uint32, 500)
			for i := range cands {
				cands[i] = benchExample(rng)
			}
			user := benchExample(rng)[:benchUserFields]
			row := make([][]uint32, benchFields)
			batch := m.NewBatch(shared)
			best := time.Hour
			c0 := threadCPU()
			for range 400 {
				t0 := time.Now()
				copy(row, user)
				batch.SetShared(row)
				for _, c := range cands {
					copy(row[benchUserFields:], c[benchUserFields:])
					batch.Score(row)
				}
				best = min(best, time.Since(t0))
			}
			fmt.Println("dim", dim, "shared", shared, best, "cpu/req", (threadCPU()-c0)/400)
		}
	}
}
