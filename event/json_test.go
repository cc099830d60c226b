package event

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"
)

func TestAppendJSONMatchesEncodingJSON(t *testing.T) {
	ts := time.Date(2026, 11, 22, 6, 0, 0, 123000000, time.UTC)
	for _, e := range []Event{
		{ID: "e1", UserID: "u", VideoID: "v", Type: Play, TS: ts},
		{ID: "imp-r-v", UserID: "u", VideoID: "v", Type: Impression, TS: ts, RequestID: "r", Category: "pets",
			Tags: []string{"cats", "funny"}, UploaderID: "up", Branch: "tag", Variant: "exp=a", WatchMs: 1500,
			Features: json.RawMessage(`{"v":3,"tags":["cats"]}`)},
		{ID: `we"ird\n`, UserID: "ü", VideoID: "v", Type: Complete, TS: ts.In(time.FixedZone("", -7200))},
	} {
		got, err := e.AppendJSON(nil)
		if err != nil {
			t.Fatal(err)
		}
		want, _ := json.Marshal(&e)
		if string(got) != string(want) {
			t.Fatalf("\n got %s\nwant %s", got, want)
		}
		var back Event
		if err := json.Unmarshal(got, &back); err != nil || !reflect.DeepEqual(back.TS.UTC(), e.TS.UTC()) || back.ID != e.ID {
			t.Fatalf("round trip: %+v, %v", back, err)
		}
	}
	if _, err := (&Event{ID: "x", Type: Type(200)}).AppendJSON(nil); err == nil {
		t.Fatal("an invalid type must not be encoded")
	}
}
