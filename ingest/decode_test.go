package ingest

import (
	"context"
	"encoding/json"
	"fmt"
	"reelfeed/feature"
	"reelfeed/profile"
	"strings"
	"testing"
	"time"

	"reelfeed/event"
)

var testNow = time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
var testLimits = EventLimits{MaxBatch: 1000, MaxFutureSkew: 5 * time.Minute, MaxPastAge: 365 * 24 * time.Hour}

func TestDecodeEventsValid(t *testing.T) {
	body := `{"events":[
		{"event_id":"e1","user_id":"u1","video_id":"v1","type":"complete","watch_ms":15000,"ts":"2026-11-22T11:59:00Z","request_id":"r1"},
		{"user_id":"u1","video_id":"v2","type":"skip"}]}`
	evs, bad := DecodeEvents([]byte(body), testNow, testLimits)
	if bad != nil {
		t.Fatalf("valid batch rejected: %v", bad)
	}
	if len(evs) != 2 {
		t.Fatalf("got %d events", len(evs))
	}
	if evs[0].Type != event.Complete || evs[0].WatchMs != 15000 || !evs[0].TS.Equal(testNow.Add(-time.Minute)) {
		t.Fatalf("first event decoded wrong: %+v", evs[0])
	}
	if evs[1].ID == "" {
		t.Fatal("an event without event_id must get one")
	}
	if !evs[1].TS.Equal(testNow) {
		t.Fatalf("missing ts must default to now, got %s", evs[1].TS)
	}
}

func TestDecodeEventsNamesEveryBadField(t *testing.T) {
	cases := []struct {
		name  string
		event string
		field string
	}{
		{"unknown type", `{"user_id":"u","video_id":"v","type":"watch"}`, "events[1].type"},
		{"missing user", `{"video_id":"v","type":"play"}`, "events[1].user_id"},
		{"empty video", `{"user_id":"u","video_id":"","type":"play"}`, "events[1].video_id"},
		{"negative watch", `{"user_id":"u","video_id":"v","type":"play","watch_ms":-5}`, "events[1].watch_ms"},
		{"fractional watch", `{"user_id":"u","video_id":"v","type":"play","watch_ms":1.5}`, "events[1].watch_ms"},
		{"unparseable ts", `{"user_id":"u","video_id":"v","type":"play","ts":"yesterday"}`, "events[1].ts"},
		{"far future ts", `{"user_id":"u","video_id":"v","type":"play","ts":"2027-01-01T00:00:00Z"}`, "events[1].ts"},
		{"ancient ts", `{"user_id":"u","video_id":"v","type":"play","ts":"2001-01-01T00:00:00Z"}`, "events[1].ts"},
		{"numeric user", `{"user_id":7,"video_id":"v","type":"play"}`, "events[1].user_id"},
		{"id with space", `{"user_id":"a b","video_id":"v","type":"play"}`, "events[1].user_id"},
		{"unknown field", `{"user_id":"u","video_id":"v","type":"play","colour":"red"}`, "events[1].colour"},
		{"not an object", `"play"`, "events[1]."},
	}
	good := `{"user_id":"u","video_id":"v","type":"play"}`
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			body := fmt.Sprintf(`{"events":[%s,%s]}`, good, tc.event)
			evs, bad := DecodeEvents([]byte(body), testNow, testLimits)
			if evs != nil {
				t.Fatal("a batch with an invalid event must accept none of it")
			}
			if _, ok := bad[tc.field]; !ok {
				t.Fatalf("problems %v do not name %s", bad, tc.field)
			}
			for k := range bad {
				if strings.HasPrefix(k, "events[0]") {
					t.Fatalf("the valid event was blamed: %v", bad)
				}
			}
		})
	}
}

func TestDecodeEventsBatchShape(t *testing.T) {
	many := make([]map[string]string, 1001)
	for i := range many {
		many[i] = map[string]string{"user_id": "u", "video_id": "v", "type": "play"}
	}
	tooMany, _ := json.Marshal(map[string]any{"events": many})
	cases := map[string]string{
		"empty body":    ``,
		"not json":      `{"events":[`,
		"no events":     `{}`,
		"empty events":  `{"events":[]}`,
		"too many":      string(tooMany),
		"unknown field": `{"events":[],"x":1}`,
		"trailing data": `{"events":[{"user_id":"u","video_id":"v","type":"play"}]} {}`,
	}
	for name, body := range cases {
		t.Run(name, func(t *testing.T) {
			evs, bad := DecodeEvents([]byte(body), testNow, testLimits)
			if evs != nil || len(bad) == 0 {
				t.Fatalf("accepted %q", body)
			}
		})
	}
}

// FuzzDecodeEvents: whatever the body, the decoder never panics, and it
// either rejects the batch with named problems or returns events that are
// all valid.
func FuzzDecodeEvents(f *testing.F) {
	f.Add(`{"events":[{"event_id":"e1","user_id":"u1","video_id":"v1","type":"complete","watch_ms":15000,"ts":"2026-11-22T11:59:00Z"}]}`)
	f.Add(`{"events":[{"user_id":"u","video_id":"v","type":"skip","watch_ms":0}]}`)
	f.Add(`{"events":[{"user_id":null,"video_id":[],"type":{},"watch_ms":"1","ts":5}]}`)
	f.Add(`{"events":null}`)
	f.Add(`[]`)
	f.Fuzz(func(t *testing.T, body string) {
		evs, bad := DecodeEvents([]byte(body), testNow, testLimits)
		if (evs == nil) == (bad == nil) {
			t.Fatalf("exactly one of events and problems must be set: %v %v", evs, bad)
		}
		for k, msg := range bad {
			if k == "" || msg == "" {
				t.Fatalf("unnamed problem %q: %q", k, msg)
			}
		}
		for _, ev := range evs {
			if ev.ID == "" || ev.UserID == "" || ev.VideoID == "" || !ev.Type.Valid() || ev.WatchMs < 0 || ev.TS.IsZero() {
				t.Fatalf("invalid event accepted: %+v", ev)
			}
			if ev.TS.After(testNow.Add(testLimits.MaxFutureSkew)) {
				t.Fatalf("future event accepted: %s", ev.TS)
			}
		}
	})
}

// The fast and the precise decoder agree on every valid batch.
func FuzzDecodePathsAgree(f *testing.F) {
	f.Add(`{"events":[{"event_id":"e1","user_id":"u1","video_id":"v1","type":"complete","watch_ms":15000,"ts":"2026-11-22T11:59:00Z","request_id":"r"}]}`)
	f.Add(`{"events":[{"event_id":"e1","user_id":"u1","video_id":"v1","type":"like","watch_ms":null,"ts":null}]}`)
	f.Fuzz(func(t *testing.T, body string) {
		fast, ok := decodeFast([]byte(body), testNow, testLimits)
		if !ok {
			return
		}
		slow, bad := decodeSlow([]byte(body), testNow, testLimits)
		if bad != nil {
			t.Fatalf("fast path accepted what the precise path rejects: %v", bad)
		}
		if len(fast) != len(slow) {
			t.Fatalf("lengths differ: %d vs %d", len(fast), len(slow))
		}
		for i := range fast {
			a, b := fast[i], slow[i]
			if a.UserID != b.UserID || a.VideoID != b.VideoID || a.Type != b.Type || a.WatchMs != b.WatchMs || !a.TS.Equal(b.TS) || a.RequestID != b.RequestID {
				t.Fatalf("event %d differs: %+v vs %+v", i, a, b)
			}
			if (a.ID == "") != (b.ID == "") {
				t.Fatalf("id assignment differs")
			}
		}
	})
}

func TestApplierSkipsEventsThatCanNeverApply(t *testing.T) {
	var dropped []string
	ap := &Applier{
		Profiles: profile.NewMemory(profile.DefaultConfig()),
		Features: feature.NewMemory(feature.DefaultConfig()),
		Dropped:  func(ev event.Event, why string) { dropped = append(dropped, why) },
	}
	good := makeEvents(2, "dora")
	bad := good[0]
	bad.ID, bad.UserID = "bad", ""
	batch := []event.Event{good[0], bad, good[1]}
	if err := ap.Apply(context.Background(), batch); err != nil {
		t.Fatalf("a corrupt event must not stall the batch: %v", err)
	}
	if len(dropped) != 1 {
		t.Fatalf("dropped %v, want the one corrupt event", dropped)
	}
	p, _ := ap.Profiles.Get(context.Background(), "dora", time.Now())
	if p.Counts[event.Complete] != 2 {
		t.Fatalf("the valid events were not applied: %v", p.Counts)
	}
}
