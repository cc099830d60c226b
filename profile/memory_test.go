package profile_test

import (
	"context"
	"runtime"
	"testing"
	"time"

	"reelfeed/profile"
	"reelfeed/profile/storetest"
)

func newMemory(t *testing.T, cfg profile.Config) profile.Store {
	s := profile.NewMemory(cfg)
	t.Cleanup(func() { s.Close() })
	return s
}

func TestMemoryConformance(t *testing.T) {
	storetest.Run(t, newMemory)
}

func BenchmarkMemoryApply(b *testing.B) {
	storetest.BenchApply(b, profile.NewMemory(profile.DefaultConfig()))
}

func BenchmarkMemoryGet(b *testing.B) {
	storetest.BenchGet(b, profile.NewMemory(profile.DefaultConfig()), 10_000)
}

// BenchmarkMemoryFootprint loads 100k users × 50 events and reports the live
// heap the store holds (run with -benchtime=1x; it takes about 30 s).
func BenchmarkMemoryFootprint(b *testing.B) {
	const users, perUser = 100_000, 50
	for range b.N {
		w := storetest.NewWorkload(3, users)
		var before runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)

		s := profile.NewMemory(profile.DefaultConfig())
		start := time.Now()
		n, err := storetest.Load(context.Background(), s, w, perUser, storetest.ApplyBatch)
		if err != nil {
			b.Fatal(err)
		}
		elapsed := time.Since(start)

		var after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&after)
		heap := float64(after.HeapAlloc) - float64(before.HeapAlloc)
		b.ReportMetric(heap/(1<<20), "heap-MiB")
		b.ReportMetric(heap/users, "heap-B/user")
		b.ReportMetric(float64(n)/elapsed.Seconds(), "load-events/s")
		runtime.KeepAlive(s)
	}
}
