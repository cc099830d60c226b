package ingest

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"reelfeed/event"
)

const (
	oneEventJSON  = `{"event_id":"e1","user_id":"u1","video_id":"v1","type":"impression","ts":"2026-11-22T12:00:00Z","request_id":"r1"}`
	twoEventsJSON = `[{"event_id":"e1","user_id":"u1","video_id":"v1","type":"impression","ts":"2026-11-22T12:00:00Z"},` +
		`{"event_id":"e2","user_id":"u1","video_id":"v2","type":"impression","ts":"2026-11-22T12:00:00Z"}]`
)

func TestAppendMessageEvents(t *testing.T) {
	cases := []struct {
		name    string
		data    string
		wantIDs []string // nil with wantErr
		wantErr bool
	}{
		{name: "single event (events stream, older impressions)", data: oneEventJSON, wantIDs: []string{"e1"}},
		{name: "single event after whitespace", data: " \n\t" + oneEventJSON, wantIDs: []string{"e1"}},
		{name: "page of events", data: twoEventsJSON, wantIDs: []string{"e1", "e2"}},
		{name: "page after whitespace", data: "\r\n  " + twoEventsJSON, wantIDs: []string{"e1", "e2"}},
		{name: "empty page", data: `[]`, wantIDs: []string{}},
		{name: "empty page with inner whitespace", data: " [ ] ", wantIDs: []string{}},

		{name: "empty message", data: ``, wantErr: true},
		{name: "whitespace only", data: " \n ", wantErr: true},
		{name: "null", data: `null`, wantErr: true},
		{name: "string", data: `"impression"`, wantErr: true},
		{name: "single event without id", data: `{"user_id":"u1","video_id":"v1","type":"impression"}`, wantErr: true},
		{name: "page element without id", data: `[{"event_id":"e1","user_id":"u1","video_id":"v1"},{"user_id":"u1","video_id":"v2"}]`, wantErr: true},
		{name: "page with a null element", data: `[null]`, wantErr: true},
		{name: "page of non-objects", data: `[1,2]`, wantErr: true},
		{name: "truncated page", data: `[{"event_id":"e1"`, wantErr: true},
		{name: "trailing garbage after page", data: twoEventsJSON + `x`, wantErr: true},
		{name: "unknown event type", data: `{"event_id":"e1","type":"watch"}`, wantErr: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := []event.Event{{ID: "earlier"}}
			got, err := appendMessageEvents(before, []byte(tc.data))
			if tc.wantErr {
				if err == nil {
					t.Fatalf("decoded %d events from corrupt data, want an error", len(got)-len(before))
				}
				if len(got) != len(before) {
					t.Fatalf("a corrupt message left %d events behind; it must be all or nothing", len(got)-len(before))
				}
				return
			}
			if err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			if ids := eventIDs(got); !slices.Equal(ids, append([]string{"earlier"}, tc.wantIDs...)) {
				t.Fatalf("events %v, want the earlier one followed by %v", ids, tc.wantIDs)
			}
		})
	}
}

func TestAppendMessageEventsKeepsTheEventFields(t *testing.T) {
	data, err := json.Marshal(impressionPage("r1", "alice", 2))
	if err != nil {
		t.Fatal(err)
	}
	got, err := appendMessageEvents(nil, data)
	if err != nil {
		t.Fatal(err)
	}
	again, err := json.Marshal(got)
	if err != nil {
		t.Fatal(err)
	}
	if string(again) != string(data) {
		t.Fatalf("a page does not survive decoding:\n got %s\nwant %s", again, data)
	}
}

func TestPageMsgID(t *testing.T) {
	page := impressionPage("r1", "alice", 3)
	id := pageMsgID(page)
	cases := []struct {
		name     string
		other    []event.Event
		wantSame bool
	}{
		{name: "same page again", other: impressionPage("r1", "alice", 3), wantSame: true},
		{name: "same request, other videos (a retried request after the shown filter)", other: impressionPage("r1", "alice", 4)[1:], wantSame: false},
		{name: "other request", other: impressionPage("r2", "alice", 3), wantSame: false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if same := pageMsgID(tc.other) == id; same != tc.wantSame {
				t.Fatalf("ids %q and %q: same=%v, want %v", id, pageMsgID(tc.other), same, tc.wantSame)
			}
		})
	}
	if !strings.HasPrefix(id, "imp-r1-") {
		t.Fatalf("page id %q should name its request, to find it in the stream", id)
	}
	anonymous := impressionPage("", "alice", 3)
	if got := pageMsgID(anonymous); !strings.HasPrefix(got, "imp-") || strings.HasPrefix(got, "imp--") || got != pageMsgID(impressionPage("", "alice", 3)) {
		t.Fatalf("a page without request id got %q: want a stable content id", got)
	}
}

// FuzzAppendMessageEvents feeds arbitrary stream content to the decoder:
// it must never panic, must apply a message whole or not at all, and what
// it accepts must survive a page round trip unchanged.
func FuzzAppendMessageEvents(f *testing.F) {
	f.Add([]byte(oneEventJSON))
	f.Add([]byte(twoEventsJSON))
	f.Add([]byte(" [] "))
	f.Add([]byte(`[{"event_id":"e1"},{"user_id":"u"}]`))
	if page, err := json.Marshal(impressionPage("r1", "alice", 2)); err == nil {
		f.Add(page)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		before := []event.Event{{ID: "earlier"}}
		got, err := appendMessageEvents(before, data)
		if err != nil {
			if len(got) != len(before) {
				t.Fatalf("error %v, yet %d events appended", err, len(got)-len(before))
			}
			return
		}
		decoded := got[len(before):]
		for _, ev := range decoded {
			if ev.ID == "" {
				t.Fatal("accepted an event without id")
			}
		}
		again, err := json.Marshal(decoded)
		if err != nil {
			t.Fatalf("accepted events do not encode: %v", err)
		}
		round, err := appendMessageEvents(nil, again)
		if err != nil {
			t.Fatalf("accepted events do not decode as a page: %v", err)
		}
		if !slices.Equal(eventIDs(round), eventIDs(decoded)) {
			t.Fatalf("round trip changed the ids: %v → %v", eventIDs(decoded), eventIDs(round))
		}
	})
}

func eventIDs(evs []event.Event) []string {
	ids := make([]string, len(evs))
	for i := range evs {
		ids[i] = evs[i].ID
	}
	return ids
}
