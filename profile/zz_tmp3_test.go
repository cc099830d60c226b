package profile

import (
	"fmt"
	"time"

	"reelfeed/event"
)

func newTmpEvents(n int) []event.Event {
	out := make([]event.Event, n)
	now := time.Now()
	for i := range out {
		out[i] = event.Event{ID: fmt.Sprintf("e%d", i), UserID: fmt.Sprintf("u%d", i%2000), VideoID: fmt.Sprintf("video-%06d", i*7%50000),
			Type: event.Impression, TS: now.Add(time.Duration(i) * time.Millisecond), Category: "cat07",
			Tags: []string{"c07-tag01", "c07-tag11", "c07-tag21"}, UploaderID: fmt.Sprintf("up%05d", i%8000)}
	}
	return out
}
