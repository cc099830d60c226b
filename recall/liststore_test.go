package recall_test

import (
	"context"
	"fmt"
	"maps"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"reelfeed/internal/testenv"
	"reelfeed/recall"
	"reelfeed/recall/liststoretest"
)

func TestMemoryListStoreConformance(t *testing.T) {
	liststoretest.Run(t, func(t *testing.T) recall.ListStore { return recall.NewMemoryListStore() })
}

func TestRedisListStoreConformance(t *testing.T) {
	testenv.RedisAddr(t) // skip (or fail under CI) once, not per subtest
	for name, ttl := range map[string]time.Duration{"NoCache": 0, "Cached": time.Minute} {
		t.Run(name, func(t *testing.T) {
			liststoretest.Run(t, func(t *testing.T) recall.ListStore {
				client, prefix := testenv.Redis(t)
				return recall.NewRedisListStore(client, prefix, ttl)
			})
		})
	}
}

func TestRedisListStoreReplicasShareLists(t *testing.T) {
	ctx := context.Background()
	client, prefix := testenv.Redis(t)
	writer := recall.NewRedisListStore(client, prefix, time.Minute)
	uncached := recall.NewRedisListStore(client, prefix, 0)
	cached := recall.NewRedisListStore(client, prefix, 150*time.Millisecond)

	if err := writer.Put(ctx, "hot", "us", []recall.Scored{{ID: "a", Score: 1}}); err != nil {
		t.Fatal(err)
	}
	mustFirst(t, uncached, "us", "a")
	mustFirst(t, cached, "us", "a")

	if err := writer.Put(ctx, "hot", "us", []recall.Scored{{ID: "b", Score: 1}}); err != nil {
		t.Fatal(err)
	}
	mustFirst(t, uncached, "us", "b")
	// Another replica's cache may serve the old list until its TTL passes,
	// then it must pick the new one up.
	mustFirst(t, cached, "us", "a")
	time.Sleep(200 * time.Millisecond)
	mustFirst(t, cached, "us", "b")
}

func TestRedisListStoreServesStaleListWhenRedisFails(t *testing.T) {
	ctx := context.Background()
	_, prefix := testenv.Redis(t) // cleans the prefix up after the test
	own := redis.NewClient(&redis.Options{Addr: testenv.RedisAddr(t), MaxRetries: -1})
	store := recall.NewRedisListStore(own, prefix, 20*time.Millisecond)
	if err := store.Put(ctx, "hot", "", []recall.Scored{{ID: "a", Score: 1}}); err != nil {
		t.Fatal(err)
	}
	mustFirst(t, store, "", "a")
	_ = own.Close()
	time.Sleep(40 * time.Millisecond)
	mustFirst(t, store, "", "a")
	if _, err := store.Get(ctx, "hot", "never-read", 0); err == nil {
		t.Fatal("Get of a list never cached succeeded with Redis unreachable")
	}
}

func mustFirst(t *testing.T, s recall.ListStore, key, wantID string) {
	t.Helper()
	got, err := s.Get(context.Background(), "hot", key, 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].ID != wantID {
		t.Fatalf("Get(hot/%s) = %v, want first %q", key, got, wantID)
	}
}

// BenchmarkRedisListStore measures the paths the branches and jobs use:
// a cached read (every feed request), an uncached read, and a job writing a
// namespace of 5000 lists of 30.
func BenchmarkRedisListStore(b *testing.B) {
	ctx := context.Background()
	client, prefix := testenv.Redis(b)
	list := make([]recall.Scored, 500)
	for i := range list {
		list[i] = recall.Scored{ID: fmt.Sprintf("video-%06d", i), Score: float64(500 - i)}
	}
	for name, ttl := range map[string]time.Duration{"Get-cached": time.Minute, "Get-uncached": 0} {
		b.Run(name, func(b *testing.B) {
			s := recall.NewRedisListStore(client, prefix, ttl)
			if err := s.Put(ctx, "hot", "us", list); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if got, err := s.Get(ctx, "hot", "us", 0); err != nil || len(got) != len(list) {
					b.Fatalf("Get = %d, %v", len(got), err)
				}
			}
		})
	}
	b.Run("ReplaceAll-5000x30", func(b *testing.B) {
		s := recall.NewRedisListStore(client, prefix, 0)
		lists := make(map[string][]recall.Scored, 5000)
		for i := range 5000 {
			lists[fmt.Sprint("v", i)] = list[i%400 : i%400+30]
		}
		b.ReportAllocs()
		for b.Loop() {
			if err := s.ReplaceAll(ctx, "i2i", maps.All(lists)); err != nil {
				b.Fatal(err)
			}
		}
	})
}
