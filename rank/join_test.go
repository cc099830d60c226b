package rank

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"reelfeed/event"
)

var joinT0 = time.Date(2026, 4, 1, 10, 0, 0, 0, time.UTC)

func imp(user, video string, at time.Duration) event.Event {
	return event.Event{UserID: user, VideoID: video, Type: event.Impression, TS: joinT0.Add(at), RequestID: "r1",
		Features: json.RawMessage(fmt.Sprintf(`{"v":1,"user":%q,"video":%q}`, user, video))}
}

func act(user, video string, typ event.Type, at time.Duration) event.Event {
	return event.Event{UserID: user, VideoID: video, Type: typ, TS: joinT0.Add(at)}
}

func TestJoinerLabels(t *testing.T) {
	type want struct {
		video  string
		label  float32
		reason string
	}
	cases := []struct {
		name   string
		events []event.Event
		flush  time.Duration
		want   []want
	}{
		{"complete is positive", []event.Event{imp("u", "a", 0), act("u", "a", event.Play, time.Second), act("u", "a", event.Complete, 20*time.Second)},
			time.Minute, []want{{"a", 1, "complete"}}},
		{"like is positive", []event.Event{imp("u", "a", 0), act("u", "a", event.Like, time.Minute)},
			time.Minute, []want{{"a", 1, "like"}}},
		{"skip is negative", []event.Event{imp("u", "a", 0), act("u", "a", event.Skip, time.Second)},
			time.Minute, []want{{"a", 0, "skip"}}},
		{"dislike is negative", []event.Event{imp("u", "a", 0), act("u", "a", event.Dislike, time.Second)},
			time.Minute, []want{{"a", 0, "dislike"}}},
		{"nothing within the window is negative once it closes", []event.Event{imp("u", "a", 0), act("u", "a", event.Play, time.Second)},
			31 * time.Minute, []want{{"a", 0, ReasonTimeout}}},
		{"still open before the window closes", []event.Event{imp("u", "a", 0)},
			29 * time.Minute, nil},
		{"a complete after the window does not count", []event.Event{imp("u", "a", 0), act("u", "a", event.Complete, 31*time.Minute)},
			62 * time.Minute, []want{{"a", 0, ReasonTimeout}}},
		{"another user's complete does not count", []event.Event{imp("u", "a", 0), act("w", "a", event.Complete, time.Second)},
			31 * time.Minute, []want{{"a", 0, ReasonTimeout}}},
		{"first label wins", []event.Event{imp("u", "a", 0), act("u", "a", event.Complete, time.Second), act("u", "a", event.Skip, 2*time.Second)},
			time.Hour, []want{{"a", 1, "complete"}}},
		{"impression without features is not joinable", []event.Event{{UserID: "u", VideoID: "a", Type: event.Impression, TS: joinT0}, act("u", "a", event.Complete, time.Second)},
			time.Hour, nil},
		{"shown again: the earlier showing is negative, the new one is labelled", []event.Event{imp("u", "a", 0), imp("u", "a", time.Minute), act("u", "a", event.Like, 2*time.Minute)},
			time.Hour, []want{{"a", 0, ReasonTimeout}, {"a", 1, "like"}}},
		{"several videos", []event.Event{imp("u", "a", 0), imp("u", "b", 0), imp("u", "c", 0), act("u", "b", event.Complete, time.Minute)},
			time.Hour, []want{{"b", 1, "complete"}, {"a", 0, ReasonTimeout}, {"c", 0, ReasonTimeout}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			j, err := NewJoiner(DefaultJoinConfig())
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range c.events {
				j.Observe(e)
			}
			got := j.Flush(joinT0.Add(c.flush))
			if len(got) != len(c.want) {
				t.Fatalf("got %d samples %+v, want %d", len(got), got, len(c.want))
			}
			for i, w := range c.want {
				g := got[i]
				if g.VideoID != w.video || g.Label != w.label || g.Reason != w.reason || g.UserID != "u" {
					t.Errorf("sample %d = %s/%s label %v (%s), want %s label %v (%s)", i, g.UserID, g.VideoID, g.Label, g.Reason, w.video, w.label, w.reason)
				}
				if !json.Valid(g.Features) || g.RequestID != "r1" {
					t.Errorf("sample %d lost its impression data: %+v", i, g)
				}
			}
			if again := j.Flush(joinT0.Add(c.flush)); len(again) != 0 {
				t.Errorf("second flush returned %d samples again", len(again))
			}
		})
	}
}

func TestJoinerConfigurableTypes(t *testing.T) {
	cfg := DefaultJoinConfig()
	cfg.Positive = []event.Type{event.Play}
	cfg.Negative = nil
	cfg.Window = time.Minute
	j, err := NewJoiner(cfg)
	if err != nil {
		t.Fatal(err)
	}
	j.Observe(imp("u", "a", 0))
	j.Observe(act("u", "a", event.Play, time.Second))
	j.Observe(imp("u", "b", 0))
	j.Observe(act("u", "b", event.Skip, time.Second)) // not a labelling type now
	got := j.Flush(joinT0.Add(2 * time.Minute))
	if len(got) != 2 || got[0].Label != 1 || got[0].Reason != "play" || got[1].Label != 0 || got[1].Reason != ReasonTimeout {
		t.Errorf("samples = %+v", got)
	}
}

func TestJoinerRejectsBadConfig(t *testing.T) {
	bad := []func(*JoinConfig){
		func(c *JoinConfig) { c.Window = 0 },
		func(c *JoinConfig) { c.Positive = nil },
		func(c *JoinConfig) { c.MaxPending = 0 },
		func(c *JoinConfig) { c.Negative = []event.Type{event.Complete} },
		func(c *JoinConfig) { c.Positive = []event.Type{event.Impression} },
	}
	for i, mutate := range bad {
		c := DefaultJoinConfig()
		mutate(&c)
		if _, err := NewJoiner(c); err == nil {
			t.Errorf("case %d: bad config accepted", i)
		}
	}
}

func TestJoinerBoundsMemory(t *testing.T) {
	cfg := DefaultJoinConfig()
	cfg.MaxPending = 100
	j, _ := NewJoiner(cfg)
	for i := range 1000 {
		j.Observe(imp("u", fmt.Sprint(i), time.Duration(i)*time.Millisecond))
	}
	st := j.Stats()
	if st.Pending != 100 || st.Dropped != 900 {
		t.Fatalf("stats = %+v, want 100 pending and 900 dropped", st)
	}
	// The newest survive.
	j.Observe(act("u", "999", event.Complete, time.Second))
	j.Observe(act("u", "0", event.Complete, time.Second))
	got := j.Flush(joinT0)
	if len(got) != 1 || got[0].VideoID != "999" {
		t.Fatalf("samples = %+v, want the newest impression labelled", got)
	}
	// Labelled samples waiting for Flush are bounded too.
	for i := range 1000 {
		v := fmt.Sprint("p", i)
		j.Observe(imp("u", v, time.Hour))
		j.Observe(act("u", v, event.Like, time.Hour+time.Second))
	}
	if got := j.Flush(joinT0); len(got) != 100 {
		t.Fatalf("flush returned %d samples, want the newest 100", len(got))
	} else if got[99].VideoID != "p999" {
		t.Fatalf("last sample %s, want p999", got[99].VideoID)
	}
	if len(j.queue) > 3*cfg.MaxPending+1024 {
		t.Errorf("queue holds %d entries for %d pending", len(j.queue), j.Stats().Pending)
	}
}

func TestJoinerQueueStaysProportional(t *testing.T) {
	j, _ := NewJoiner(DefaultJoinConfig())
	for i := range 20000 {
		v := fmt.Sprint(i)
		j.Observe(imp("u", v, 0))
		j.Observe(act("u", v, event.Complete, time.Second))
	}
	if n := len(j.queue) - j.head; n > 2048 {
		t.Errorf("queue holds %d closed entries with nothing pending", n)
	}
	if got := j.Flush(joinT0); len(got) != 20000 {
		t.Errorf("flush returned %d samples, want 20000", len(got))
	}
}

func TestJoinerWatermark(t *testing.T) {
	j, _ := NewJoiner(DefaultJoinConfig())
	j.Observe(imp("u", "a", time.Hour))
	j.Observe(act("u", "b", event.Play, time.Minute)) // older event arriving later
	if got := j.Watermark(); !got.Equal(joinT0.Add(time.Hour)) {
		t.Errorf("watermark = %v", got)
	}
}

// Impressions travel on their own stream: a label that beats its
// impression to the joiner still labels it.
func TestJoinerLabelBeforeImpression(t *testing.T) {
	j, err := NewJoiner(DefaultJoinConfig())
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	j.Observe(event.Event{UserID: "u", VideoID: "v", Type: event.Complete, TS: now})
	j.Observe(event.Event{UserID: "u", VideoID: "w", Type: event.Skip, TS: now})
	j.Observe(event.Event{UserID: "u", VideoID: "v", Type: event.Impression, TS: now, Features: []byte(`{"v":1}`)})
	j.Observe(event.Event{UserID: "u", VideoID: "w", Type: event.Impression, TS: now, Features: []byte(`{"v":1}`)})
	got := j.Flush(now)
	if len(got) != 2 || got[0].Label != 1 || got[1].Label != 0 {
		t.Fatalf("early labels not joined: %+v", got)
	}
}
