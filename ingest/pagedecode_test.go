package ingest

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"reelfeed/event"
)

// samplePage is a page as the feed writes it.
func samplePage(t testing.TB) []byte {
	ts := time.Date(2026, 11, 22, 6, 0, 0, 123456789, time.UTC)
	page := []event.Event{
		{ID: "imp-r1-v1", UserID: "u1", VideoID: "v1", Type: event.Impression, TS: ts, RequestID: "r1",
			Category: "pets", Tags: []string{"cats", "funny"}, UploaderID: "up1", Branch: "tag", Variant: "exp=a",
			Features: json.RawMessage(`{"v":3,"user":"u1","tags":["cats"],"tag_affinity":[1,-2],"follows":true}`)},
		{ID: "imp-r1-v2", UserID: "u1", VideoID: "v2", Type: event.Impression, TS: ts, RequestID: "r1"},
	}
	data, err := pageMessage("s", page)
	if err != nil {
		t.Fatal(err)
	}
	return data.Data
}

func TestDecodePageFastMatchesEncodingJSON(t *testing.T) {
	cases := map[string]struct {
		data   string
		wantOK bool
	}{
		"feed page":          {string(samplePage(t)), true},
		"empty":              {"[]", true},
		"spaced":             {" [ {\"event_id\" : \"a\" , \"type\":\"play\", \"watch_ms\": 120} ] ", true},
		"escaped string":     {`[{"event_id":"a\"b"}]`, false},
		"unicode":            {`[{"event_id":"ü"}]`, false},
		"unknown key":        {`[{"event_id":"a","extra":1}]`, false},
		"repeated key":       {`[{"event_id":"a","event_id":"b"}]`, false},
		"null field":         {`[{"event_id":null}]`, false},
		"float watch_ms":     {`[{"watch_ms":1.5}]`, false},
		"bad type":           {`[{"type":"teleport"}]`, false},
		"bad time":           {`[{"ts":"yesterday"}]`, false},
		"trailing garbage":   {`[{"event_id":"a"}] x`, false},
		"truncated":          {`[{"event_id":"a"`, false},
		"features null":      {`[{"features":null}]`, false},
		"features not valid": {`[{"features":{"a":}}]`, false},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			fast, ok := decodePageFast(nil, []byte(tc.data))
			if ok != tc.wantOK {
				t.Fatalf("ok = %v, want %v", ok, tc.wantOK)
			}
			if ok {
				checkSameAsEncodingJSON(t, []byte(tc.data), fast)
			}
		})
	}
}

func checkSameAsEncodingJSON(t *testing.T, data []byte, fast []event.Event) {
	t.Helper()
	var slow []event.Event
	if err := json.Unmarshal(data, &slow); err != nil {
		t.Fatalf("fast path accepted %q, encoding/json rejects it: %v", data, err)
	}
	if len(slow) == 0 && len(fast) == 0 {
		return
	}
	if !reflect.DeepEqual(fast, slow) {
		t.Fatalf("decoding %q:\n fast %+v\n slow %+v", data, fast, slow)
	}
}

func FuzzDecodePageFast(f *testing.F) {
	f.Add(samplePage(f))
	f.Add([]byte(`[{"event_id":"a","watch_ms":-0,"tags":[]}]`))
	f.Add([]byte(`[{"features":[1,{"a":"}\\""}],"ts":"2026-01-02T03:04:05Z"}]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		fast, ok := decodePageFast(nil, data)
		if ok {
			checkSameAsEncodingJSON(t, data, fast)
		}
	})
}

func BenchmarkDecodePage(b *testing.B) {
	data := samplePage(b)
	b.Run("fast", func(b *testing.B) {
		for b.Loop() {
			if _, ok := decodePageFast(nil, data); !ok {
				b.Fatal("not decoded")
			}
		}
	})
	b.Run("encoding/json", func(b *testing.B) {
		for b.Loop() {
			var page []event.Event
			if err := json.Unmarshal(data, &page); err != nil {
				b.Fatal(err)
			}
		}
	})
}
