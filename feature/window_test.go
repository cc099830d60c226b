package feature

import (
	"testing"
	"time"

	"reelfeed/event"
)

func TestFloorDiv(t *testing.T) {
	cases := []struct{ a, b, want int64 }{
		{0, 60, 0}, {59, 60, 0}, {60, 60, 1}, {-1, 60, -1}, {-60, 60, -1}, {-61, 60, -2},
	}
	for _, c := range cases {
		if got := floorDiv(c.a, c.b); got != c.want {
			t.Errorf("floorDiv(%d, %d) = %d, want %d", c.a, c.b, got, c.want)
		}
	}
	if got := minuteOf(time.Unix(-1, 0)); got != -1 {
		t.Errorf("minuteOf(1969-12-31T23:59:59) = %d, want -1", got)
	}
	if got := hourOfMinute(-1); got != -1 {
		t.Errorf("hourOfMinute(-1) = %d, want -1", got)
	}
}

func TestSeriesStaysBounded(t *testing.T) {
	var s series
	start := minuteOf(time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC))
	for m := start; m < start+3*24*60; m += 7 {
		s.add(m, event.Play)
		s.add(m-200, event.Impression) // late arrivals outside the minute ring
		if len(s.minutes) > minuteRing || len(s.hours) > hourRing {
			t.Fatalf("at minute %d: %d minute and %d hour buckets, want at most %d and %d",
				m-start, len(s.minutes), len(s.hours), minuteRing, hourRing)
		}
	}
	for _, bs := range [][]bucket{s.minutes, s.hours} {
		for i := 1; i < len(bs); i++ {
			if bs[i-1].idx >= bs[i].idx {
				t.Fatalf("buckets out of order: %d then %d", bs[i-1].idx, bs[i].idx)
			}
		}
	}
}

func TestSeriesAddReportsWhereItCounted(t *testing.T) {
	var s series
	const m = 1_000_000
	cases := []struct {
		name   string
		minute int64
		want   added
	}{
		{"first event", m, added{minute: true, hour: true}},
		{"same minute", m, added{minute: true, hour: true}},
		{"newer minute", m + 1, added{minute: true, hour: true, advanced: true}},
		{"older than the minute ring", m + 1 - minuteRing, added{hour: true}},
		{"older than both rings", m - 60*hourRing, added{}},
	}
	for _, c := range cases {
		if got := s.add(c.minute, event.Play); got != c.want {
			t.Errorf("%s: %+v, want %+v", c.name, got, c.want)
		}
	}
	if s.life[event.Play] != int64(len(cases)) {
		t.Errorf("lifetime = %d, want %d", s.life[event.Play], len(cases))
	}
}

func TestDedupeKey(t *testing.T) {
	// The Redis backend persists these keys: the function must never change.
	if got := dedupeKey("video-1", "event-1"); got != 0xe1b30e260b8e7cc7 {
		t.Errorf("dedupeKey changed: %#x", got)
	}
	if dedupeKey("ab", "c") == dedupeKey("a", "bc") {
		t.Error("the video/event boundary is not part of the key")
	}
}

func TestValidate(t *testing.T) {
	ok := event.Event{ID: "e", VideoID: "v", Type: event.Like}
	cases := []struct {
		name    string
		mutate  func(*event.Event)
		wantErr bool
	}{
		{"valid", func(*event.Event) {}, false},
		{"no id", func(e *event.Event) { e.ID = "" }, true},
		{"no video", func(e *event.Event) { e.VideoID = "" }, true},
		{"bad type", func(e *event.Event) { e.Type = event.NumTypes }, true},
	}
	for _, c := range cases {
		e := ok
		c.mutate(&e)
		err := validate([]event.Event{ok, e})
		if (err != nil) != c.wantErr {
			t.Errorf("%s: err = %v, want error %v", c.name, err, c.wantErr)
		}
	}
}
