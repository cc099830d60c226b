package feature

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"reelfeed/event"
	"reelfeed/internal/testenv"
)

func play(id, video string, ts time.Time) event.Event {
	return event.Event{ID: id, VideoID: video, Type: event.Play, TS: ts}
}

func mustApply(t *testing.T, s Store, events ...event.Event) int {
	t.Helper()
	n, err := s.Apply(context.Background(), events)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func lifetimePlays(t *testing.T, s Store, video string, now time.Time) int64 {
	t.Helper()
	st, err := s.Get(context.Background(), nil, []string{video}, now)
	if err != nil {
		t.Fatal(err)
	}
	return st[0].Lifetime[event.Play]
}

func TestRedisCacheNeverServesPastTTL(t *testing.T) {
	client, prefix := testenv.Redis(t)
	writer := NewRedis(client, prefix, Config{CacheTTL: 0})
	reader := NewRedis(client, prefix, Config{CacheTTL: time.Second})
	clock := &fakeClock{t: time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC)}
	reader.now = clock.now
	ts := clock.t

	mustApply(t, writer, play("1", "v", ts))
	if got := lifetimePlays(t, reader, "v", ts); got != 1 {
		t.Fatalf("first read = %d, want 1", got)
	}
	mustApply(t, writer, play("2", "v", ts))
	clock.advance(time.Second - time.Nanosecond)
	if got := lifetimePlays(t, reader, "v", ts); got != 1 {
		t.Errorf("read inside the TTL = %d, want the cached 1", got)
	}
	clock.advance(time.Nanosecond)
	if got := lifetimePlays(t, reader, "v", ts); got != 2 {
		t.Errorf("read at the TTL = %d, want 2", got)
	}
}

func TestRedisCachedEntryServesOtherMinutes(t *testing.T) {
	ctx := context.Background()
	client, prefix := testenv.Redis(t)
	plain := NewRedis(client, prefix, Config{})
	cached := NewRedis(client, prefix, Config{CacheTTL: time.Hour})
	t0 := time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC)
	for i := 0; i < 120; i += 3 {
		mustApply(t, plain, play("e"+strconv.Itoa(i), "v", t0.Add(time.Duration(i)*time.Minute)))
	}
	ids := []string{"v", "unknown", "v"}
	if _, err := cached.Get(ctx, nil, ids, t0); err != nil { // fills the cache at one minute
		t.Fatal(err)
	}
	for _, d := range []time.Duration{0, 30 * time.Minute, 2 * time.Hour, 30 * time.Hour} {
		want, err := plain.Get(ctx, nil, ids, t0.Add(d))
		if err != nil {
			t.Fatal(err)
		}
		got, err := cached.Get(ctx, nil, ids, t0.Add(d))
		if err != nil {
			t.Fatal(err)
		}
		for k := range ids {
			if got[k] != want[k] {
				t.Errorf("now t0+%v, %s: cached %+v, want %+v", d, ids[k], got[k], want[k])
			}
		}
	}
}

func TestRedisCacheIsBounded(t *testing.T) {
	client, prefix := testenv.Redis(t)
	const capacity = 2 * cacheShards
	r := newRedis(client, prefix, Config{DedupeTTL: time.Hour, CacheTTL: time.Hour}, capacity)
	ids := make([]string, 1000)
	for i := range ids {
		ids[i] = "v" + strconv.Itoa(i)
	}
	for i := 0; i < 3; i++ {
		if _, err := r.Get(context.Background(), nil, ids, time.Now()); err != nil {
			t.Fatal(err)
		}
		if n := r.cache.len(); n > capacity {
			t.Fatalf("cache holds %d entries, capacity %d", n, capacity)
		}
	}
}

func TestRedisReloadsAMissingScript(t *testing.T) {
	client, prefix := testenv.Redis(t)
	r := NewRedis(client, prefix, Config{})
	// A variant the server has never seen answers NOSCRIPT, as after a
	// Redis restart or failover.
	r.apply = redis.NewScript(applyScript + "\n-- " + testenv.RandomID())
	ts := time.Now()
	if n := mustApply(t, r, play("a", "v1", ts), play("b", "v2", ts), play("a", "v1", ts)); n != 2 {
		t.Errorf("applied %d, want 2", n)
	}
	if got := lifetimePlays(t, r, "v1", ts); got != 1 {
		t.Errorf("v1 plays = %d, want 1", got)
	}
}

func TestRedisDedupeIsPrunedAfterTTL(t *testing.T) {
	ctx := context.Background()
	client, prefix := testenv.Redis(t)
	const ttl = time.Hour
	r := NewRedis(client, prefix, Config{DedupeTTL: ttl})
	clock := &fakeClock{t: time.Now()}
	r.now = clock.now
	ts := clock.t
	mustApply(t, r, play("1", "v", ts), play("2", "v", ts), play("3", "v", ts))

	dkey := r.dedupeKey("v")
	if n := client.ZCard(ctx, dkey).Val(); n != 3 {
		t.Fatalf("dedupe set holds %d, want 3", n)
	}
	span := ttl / dedupeGenerations
	if got := client.PTTL(ctx, dkey).Val(); got <= 0 || got > ttl+span {
		t.Errorf("dedupe key TTL = %v, want within (0, %v]", got, ttl+span)
	}
	clock.advance(59 * time.Minute)
	if n := mustApply(t, r, play("1", "v", ts)); n != 0 {
		t.Errorf("repeat within the TTL applied %d", n)
	}
	clock.advance(span + time.Minute)
	if n := mustApply(t, r, play("4", "v", ts)); n != 1 {
		t.Errorf("new event applied %d", n)
	}
	if n := client.ZCard(ctx, dkey).Val(); n != 1 {
		t.Errorf("past TTL plus one period the dedupe set holds %d, want 1", n)
	}
	if n := mustApply(t, r, play("1", "v", ts)); n != 1 {
		t.Errorf("a forgotten id applied %d, want 1", n)
	}
}

func TestRedisKeysShareHashTagAndStayCompact(t *testing.T) {
	ctx := context.Background()
	client, prefix := testenv.Redis(t)
	r := NewRedis(client, prefix, Config{})
	t0 := time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC)
	// Ten hours of events, a few a minute, in batches: both rings fill up
	// and keep moving.
	var batch []event.Event
	for m := 0; m < 600; m++ {
		for k := 0; k < 3; k++ {
			e := play(strconv.Itoa(m)+"-"+strconv.Itoa(k), "vid}x", t0.Add(time.Duration(m)*time.Minute))
			e.Type = event.Type(k)
			batch = append(batch, e)
		}
		if len(batch) >= 90 {
			mustApply(t, r, batch...)
			batch = batch[:0]
		}
	}
	mustApply(t, r, batch...)

	ckey, dkey := r.countersKey("vid}x"), r.dedupeKey("vid}x")
	for _, k := range []string{ckey, dkey} {
		if !strings.HasSuffix(k, "{vid}x}") {
			t.Errorf("key %q does not end with the video's hash tag", k)
		}
	}
	if n := client.HLen(ctx, ckey).Val(); n > 2+minuteRing+hourRing {
		t.Errorf("counters hash has %d fields, want at most %d", n, 2+minuteRing+hourRing)
	}
	if enc := client.ObjectEncoding(ctx, ckey).Val(); enc != "listpack" && enc != "ziplist" {
		t.Errorf("counters hash encoding %q, want the compact listpack", enc)
	}
	st, err := r.Get(ctx, nil, []string{"vid}x"}, t0.Add(599*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	for typ := event.Type(0); typ < 3; typ++ {
		if st[0].Hour[typ] != 60 || st[0].Day[typ] != 600 || st[0].Lifetime[typ] != 600 {
			t.Errorf("%s: hour/day/lifetime %d/%d/%d, want 60/600/600", typ, st[0].Hour[typ], st[0].Day[typ], st[0].Lifetime[typ])
		}
	}
}

func TestRedisReportsCorruptCounters(t *testing.T) {
	ctx := context.Background()
	client, prefix := testenv.Redis(t)
	r := NewRedis(client, prefix, Config{})
	client.HSet(ctx, r.countersKey("v"), "n", "100", "l", "1,x")
	if _, err := r.Get(ctx, nil, []string{"v"}, time.Now()); err == nil || !strings.Contains(err.Error(), `"v"`) {
		t.Errorf("Get of a corrupt hash: err = %v, want an error naming the video", err)
	}
}
