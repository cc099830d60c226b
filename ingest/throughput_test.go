package ingest

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"reelfeed/event"
)

// BenchmarkPublishAndConsume measures the embedded bus end to end: events
// published in batches of 500 and applied by a consumer with a no-op store.
func BenchmarkPublishAndConsume(b *testing.B) {
	bus := embeddedBusB(b)
	b.Cleanup(bus.Close) // after the consumers stop (cleanups run last first)
	applied := countingConsumers(b, bus)
	evs := makeEvents(500, "u")
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		for j := range evs {
			evs[j].ID = evs[j].ID[:0] + "b" + itoa(i) + "-" + itoa(j)
		}
		if _, err := bus.PublishEvents(context.Background(), evs); err != nil {
			b.Fatal(err)
		}
	}
	published := time.Since(start)
	for applied.Load() < int64(b.N*500) {
		time.Sleep(time.Millisecond)
	}
	total := time.Since(start)
	b.ReportMetric(float64(b.N*500)/published.Seconds(), "published/s")
	b.ReportMetric(float64(b.N*500)/total.Seconds(), "applied/s")
}

func itoa(i int) string {
	if i == 0 {
		return "0"
	}
	var buf [20]byte
	n := len(buf)
	for i > 0 {
		n--
		buf[n] = byte('0' + i%10)
		i /= 10
	}
	return string(buf[n:])
}

// countingConsumers starts the event consumers with a store that only
// counts what it is given; they stop when the benchmark ends.
func countingConsumers(b *testing.B, bus *Bus) *atomic.Int64 {
	var applied atomic.Int64
	noop := func(_ context.Context, evs []event.Event) error { applied.Add(int64(len(evs))); return nil }
	cons, err := bus.StartEventConsumers(context.Background(), ConsumerConfig{Batch: 1000, Linger: 5 * time.Millisecond}, noop, ConsumerMetrics{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		for _, c := range cons {
			c.Stop()
		}
	})
	return &applied
}
