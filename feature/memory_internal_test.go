package feature

import (
	"context"
	"math/rand/v2"
	"strconv"
	"testing"
	"time"

	"reelfeed/event"
)

// fakeClock is a settable clock for dedupe and cache ages.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time          { return c.t }
func (c *fakeClock) advance(d time.Duration) { c.t = c.t.Add(d) }

func TestMemoryForgetsAppliedIDsAfterDedupeTTL(t *testing.T) {
	ctx := context.Background()
	cfg := DefaultConfig()
	cfg.DedupeTTL = time.Hour
	m := NewMemory(cfg)
	clock := &fakeClock{t: time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC)}
	m.now = clock.now
	e := []event.Event{{ID: "e1", VideoID: "v", Type: event.Play, TS: clock.t}}
	steps := []struct {
		name  string
		after time.Duration
		want  int
	}{
		{"first", 0, 1},
		{"within the TTL", 59 * time.Minute, 0},
		{"past TTL plus one generation", time.Hour/dedupeGenerations + 2*time.Minute, 1},
	}
	for _, s := range steps {
		clock.advance(s.after)
		n, err := m.Apply(ctx, e)
		if err != nil {
			t.Fatal(err)
		}
		if n != s.want {
			t.Errorf("%s: applied %d, want %d", s.name, n, s.want)
		}
	}
}

// The memo must always equal a fresh sum, whatever the mix of reads and
// writes at different minutes.
func TestMemoryMemoMatchesRecompute(t *testing.T) {
	ctx := context.Background()
	m := NewMemory(DefaultConfig())
	rng := rand.New(rand.NewPCG(5, 6))
	start := time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC)
	videos := []string{"a", "b", "c"}
	for i := 0; i < 400; i++ {
		ts := start.Add(time.Duration(rng.Int64N(int64(30 * time.Hour))))
		e := event.Event{ID: strconv.Itoa(i), VideoID: videos[rng.IntN(3)], Type: event.Type(rng.IntN(int(event.NumTypes))), TS: ts}
		if _, err := m.Apply(ctx, []event.Event{e}); err != nil {
			t.Fatal(err)
		}
		now := start.Add(time.Duration(rng.Int64N(int64(32 * time.Hour))))
		got, err := m.Get(ctx, nil, videos, now)
		if err != nil {
			t.Fatal(err)
		}
		for k, id := range videos {
			key, check := m.key(id)
			sh := m.shard(key)
			sh.mu.Lock()
			var want Stats
			if v := sh.videos[key].find(check); v != nil {
				want.Hour, want.Day = v.windows(minuteOf(now))
				want.Lifetime = v.life
			}
			sh.mu.Unlock()
			want.VideoID = id
			if got[k] != want {
				t.Fatalf("step %d, %s at %s:\n got %+v\nwant %+v", i, id, now, got[k], want)
			}
		}
	}
}

func TestMemoryHonoursCancelledContext(t *testing.T) {
	m := NewMemory(DefaultConfig())
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := m.Apply(ctx, []event.Event{{ID: "e", VideoID: "v", TS: time.Now()}}); err == nil {
		t.Error("Apply with a cancelled context succeeded")
	}
	if _, err := m.Get(ctx, nil, []string{"v"}, time.Now()); err == nil {
		t.Error("Get with a cancelled context succeeded")
	}
}
