package ingest

import (
	"context"
	"encoding/json"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"

	"reelfeed/event"
)

// loggedFeatures is shaped like the features the feed logs with each
// impression (≈340 bytes), so message sizes match production.
var loggedFeatures = json.RawMessage(`{"v":2,"user":{"seg":"active","region":"eu","device":"ios","age":"25-34"},` +
	`"video":{"cat":"pets","q":"0.8-0.9","age_h":"24-48","dur":"15-30","ctr1h":"0.05-0.1","ctr24h":"0.05-0.1","cr24h":"0.3-0.4"},` +
	`"cross":{"tag_aff":"0.2-0.4","cat_aff":"0.4-0.6","up_aff":"0-0.1","follows":false},"branch":"i2i","pos":3}`)

// impressionPage builds one served page the way the feed does: every
// impression carries the request id and is named imp-<request>-<video>.
func impressionPage(requestID, user string, n int) []event.Event {
	page := make([]event.Event, n)
	now := time.Now()
	for i := range page {
		video := fmt.Sprintf("v%d", i)
		page[i] = event.Event{
			ID: "imp-" + requestID + "-" + video, UserID: user, VideoID: video, Type: event.Impression,
			TS: now, RequestID: requestID, Category: "pets", Tags: []string{"cats", "funny", "kitten", "cute", "pets"},
			UploaderID: "up1", Branch: "i2i", Variant: "control", Features: loggedFeatures,
		}
	}
	return page
}

// BenchmarkImpressionPages measures the impression path end to end on the
// embedded bus: one op is 1000 feed pages of 10 impressions handed to the
// sink and applied by a consumer with a no-op store.
func BenchmarkImpressionPages(b *testing.B) {
	const pages, perPage = 1000, 10
	bus := embeddedBusB(b)
	b.Cleanup(bus.Close) // after the consumers stop (cleanups run last first)
	var dropped atomic.Int64
	applied := countingConsumers(b, bus)
	sink := NewImpressionSink(bus, pages, zap.NewNop(), func(n int) { dropped.Add(int64(n)) })
	defer sink.Close()
	cpu := processCPU()
	op := 0
	for b.Loop() {
		for p := range pages {
			sink.Publish(context.Background(), impressionPage(fmt.Sprintf("r%d-%d", op, p), "u", perPage))
		}
		op++
		want := int64(op * pages * perPage)
		for applied.Load() < want {
			if dropped.Load() > 0 {
				b.Fatalf("%d impressions dropped: the benchmark must measure delivery, not loss", dropped.Load())
			}
			time.Sleep(100 * time.Microsecond)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*pages), "ns/page")
	b.ReportMetric((processCPU()-cpu)*1e6/float64(b.N*pages), "cpu-µs/page")
}
