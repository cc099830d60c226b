package feature_test

import (
	"context"
	"math/rand/v2"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"reelfeed/event"
	"reelfeed/feature"
	"reelfeed/feature/storetest"
	"reelfeed/internal/testenv"
)

func newRedis(t testing.TB, cfg feature.Config) *feature.Redis {
	client, prefix := testenv.Redis(t)
	s := feature.NewRedis(client, prefix, cfg)
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func uncached() feature.Config {
	cfg := feature.DefaultConfig()
	cfg.CacheTTL = 0
	return cfg
}

func TestRedisConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) feature.Store { return newRedis(t, uncached()) })
}

// A Ring, like a Redis Cluster, gets one video per script call.
func TestRedisConformanceOneVideoPerScript(t *testing.T) {
	storetest.Run(t, func(t *testing.T) feature.Store {
		_, prefix := testenv.Redis(t) // removes the prefix's keys afterwards
		ring := redis.NewRing(&redis.RingOptions{Addrs: map[string]string{"only": testenv.RedisAddr(t)}})
		t.Cleanup(func() { _ = ring.Close() })
		return feature.NewRedis(ring, prefix, uncached())
	})
}

// TestBackendsAgree drives both backends through days of out-of-order
// events, long gaps included, and compares every read, also reads far
// behind the newest events where only the shared pruning rules decide.
func TestBackendsAgree(t *testing.T) {
	ctx := context.Background()
	mem := feature.NewMemory(feature.DefaultConfig())
	red := newRedis(t, uncached())
	rng := rand.New(rand.NewPCG(3, 4))
	start := time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC)
	videos := []string{"a", "b", "c", "d", "e"}

	var events []event.Event
	for i := 0; i < 1500; i++ {
		// Bursts per video around a few moments over three days.
		moment := start.Add(time.Duration(rng.IntN(6)) * 13 * time.Hour)
		ts := moment.Add(time.Duration(rng.Int64N(int64(3 * time.Hour))))
		events = append(events, event.Event{
			ID: "e" + strconv.Itoa(i), VideoID: videos[rng.IntN(len(videos))],
			Type: event.Type(rng.IntN(int(event.NumTypes))), TS: ts,
		})
	}
	rng.Shuffle(len(events), func(i, j int) { events[i], events[j] = events[j], events[i] })
	for len(events) > 0 {
		n := min(1+rng.IntN(120), len(events))
		a, err := mem.Apply(ctx, events[:n])
		if err != nil {
			t.Fatal(err)
		}
		b, err := red.Apply(ctx, events[:n])
		if err != nil {
			t.Fatal(err)
		}
		if a != b {
			t.Fatalf("applied: memory %d, redis %d", a, b)
		}
		events = events[n:]
	}
	for i := 0; i < 60; i++ {
		now := start.Add(time.Duration(rng.Int64N(int64(4 * 24 * time.Hour))))
		want, err := mem.Get(ctx, nil, videos, now)
		if err != nil {
			t.Fatal(err)
		}
		got, err := red.Get(ctx, nil, videos, now)
		if err != nil {
			t.Fatal(err)
		}
		for k := range videos {
			if got[k] != want[k] {
				t.Errorf("now %s, video %s:\nredis  %+v\nmemory %+v", now, videos[k], got[k], want[k])
			}
		}
	}
}

// TestRedisCacheServesAtMostTTL uses two stores on one Redis, as two
// replicas would: the reader caches, the writer does not share its cache.
func TestRedisCacheServesAtMostTTL(t *testing.T) {
	ctx := context.Background()
	client, prefix := testenv.Redis(t)
	const ttl = 300 * time.Millisecond
	writer := feature.NewRedis(client, prefix, uncached())
	cfg := feature.DefaultConfig()
	cfg.CacheTTL = ttl
	reader := feature.NewRedis(client, prefix, cfg)
	now := time.Now()
	play := func(id string) {
		t.Helper()
		if _, err := writer.Apply(ctx, []event.Event{{ID: id, VideoID: "v", Type: event.Play, TS: now}}); err != nil {
			t.Fatal(err)
		}
	}
	lifetime := func() int64 {
		t.Helper()
		st, err := reader.Get(ctx, nil, []string{"v"}, now)
		if err != nil {
			t.Fatal(err)
		}
		return st[0].Lifetime[event.Play]
	}

	play("1")
	fetched := time.Now()
	if got := lifetime(); got != 1 {
		t.Fatalf("first read = %d, want 1", got)
	}
	play("2")
	got := lifetime()
	if time.Since(fetched) < ttl/2 && got != 1 {
		// Only meaningful while the entry is surely fresh; a slow machine
		// may already be past the TTL.
		t.Errorf("read within the TTL = %d, want the cached 1", got)
	}
	written := time.Now()
	time.Sleep(time.Until(written.Add(ttl)))
	if got := lifetime(); got != 2 {
		t.Errorf("read a TTL after the write = %d, want 2", got)
	}
}

func BenchmarkRedisApply(b *testing.B) {
	benchApply(b, newRedis(b, uncached()))
}

func BenchmarkRedisGet(b *testing.B) {
	const videos = 20_000
	client, prefix := testenv.Redis(b)
	writer := feature.NewRedis(client, prefix, uncached())
	preload(b, writer, videos, 5)
	b.Run("no-cache", func(b *testing.B) { benchGet(b, writer, videos) })
	cfg := feature.DefaultConfig()
	cfg.CacheTTL = time.Hour // every video is fetched once, then served from the cache
	cached := feature.NewRedis(client, prefix, cfg)
	for _, skewed := range []bool{false, true} {
		for _, ids := range idLists(videos, skewed) {
			if _, err := cached.Get(context.Background(), nil, ids, benchNow); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.Run("cache", func(b *testing.B) { benchGet(b, cached, videos) })
}
