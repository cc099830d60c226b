package feed

import (
	"fmt"
	"testing"
	"time"
)

func TestServedCache(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	c := newServedCache(RecentlyServedConfig{TTL: 10 * time.Minute, MaxUsers: 64 * 4, PerUser: 3})
	view := func(user string, at time.Time) *servedView {
		return &servedView{user: c.user(user, false), cutoff: at.Add(-10 * time.Minute)}
	}

	c.record("u", []string{"a", "b"}, now)
	if at, ok := view("u", now).LastServed("a"); !ok || !at.Equal(now) {
		t.Fatalf("a not remembered: %v %v", at, ok)
	}
	if _, ok := view("other", now).LastServed("a"); ok {
		t.Fatal("another user's video remembered")
	}
	if _, ok := view("u", now.Add(11*time.Minute)).LastServed("a"); ok {
		t.Fatal("entry older than the TTL still counts")
	}

	// Per user, the oldest ids are forgotten beyond PerUser; a re-served
	// id keeps its newer time.
	c.record("u", []string{"a"}, now.Add(time.Minute))
	c.record("u", []string{"c", "d"}, now.Add(2*time.Minute))
	v := view("u", now.Add(2*time.Minute))
	if _, ok := v.LastServed("b"); ok {
		t.Fatal("b should have been evicted")
	}
	if at, ok := v.LastServed("a"); !ok || !at.Equal(now.Add(time.Minute)) {
		t.Fatalf("re-served a lost: %v %v", at, ok)
	}

	// Users age out by generations: memory stays bounded.
	for i := range 10_000 {
		c.record(fmt.Sprintf("user-%d", i), []string{"x"}, now)
	}
	total := 0
	for i := range c.shards {
		total += len(c.shards[i].cur) + len(c.shards[i].prev)
	}
	if total > 64*4 {
		t.Fatalf("%d users kept, bound is %d", total, 64*4)
	}
	if _, ok := view("user-9999", now).LastServed("x"); !ok {
		t.Fatal("the most recent user was evicted")
	}
}
