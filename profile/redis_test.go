package profile_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"reelfeed/event"
	"reelfeed/internal/testenv"
	"reelfeed/profile"
	"reelfeed/profile/storetest"
)

func newRedis(t *testing.T, cfg profile.Config) profile.Store {
	client, prefix := testenv.Redis(t)
	s := profile.NewRedis(client, prefix, cfg)
	t.Cleanup(func() { s.Close() })
	return s
}

func TestRedisConformance(t *testing.T) {
	storetest.Run(t, newRedis)
}

// TestRedisKeysShareSlotAndExpire checks the layout that keeps the store
// cluster-safe and bounded: every key of a user carries the user's hash tag
// and an expiry.
func TestRedisKeysShareSlotAndExpire(t *testing.T) {
	ctx := context.Background()
	client, prefix := testenv.Redis(t)
	s := profile.NewRedis(client, prefix, profile.DefaultConfig())
	now := time.Now()
	_, err := s.Apply(ctx, []event.Event{
		{ID: "1", UserID: "ann", VideoID: "v1", Type: event.Like, TS: now, Tags: []string{"x"}},
		{ID: "2", UserID: "ann", VideoID: "v2", Type: event.Impression, TS: now},
	})
	if err != nil {
		t.Fatal(err)
	}
	keys, err := client.Keys(ctx, prefix+"*").Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 2 {
		t.Errorf("keys = %v, want 2 (profile, dedupe)", keys)
	}
	for _, k := range keys {
		if !strings.Contains(k, "{ann}") {
			t.Errorf("key %q lacks the user hash tag", k)
		}
		ttl, err := client.PTTL(ctx, k).Result()
		if err != nil {
			t.Fatal(err)
		}
		if ttl <= 0 || ttl > profile.DefaultConfig().LongWindow {
			t.Errorf("key %q ttl %v, want an expiry within the retention", k, ttl)
		}
	}
}

func TestRedisPingFailsWhenDown(t *testing.T) {
	client := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", DialTimeout: 100 * time.Millisecond, MaxRetries: -1})
	t.Cleanup(func() { client.Close() })
	if err := profile.NewRedis(client, "p:", profile.DefaultConfig()).Ping(context.Background()); err == nil {
		t.Error("Ping succeeded against a closed port")
	}
}

func BenchmarkRedisApply(b *testing.B) {
	client, prefix := testenv.Redis(b)
	storetest.BenchApply(b, profile.NewRedis(client, prefix, profile.DefaultConfig()))
}

func BenchmarkRedisGet(b *testing.B) {
	client, prefix := testenv.Redis(b)
	storetest.BenchGet(b, profile.NewRedis(client, prefix, profile.DefaultConfig()), 2_000)
}
