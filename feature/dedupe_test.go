package feature

import (
	"testing"
	"time"
)

func TestDedupeSetRemembersForTTL(t *testing.T) {
	const ttl = time.Hour
	span := ttl / dedupeGenerations
	t0 := time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC)
	d := newDedupeSet(ttl)
	if !d.markNew(1, t0) {
		t.Fatal("first mark not new")
	}
	steps := []struct {
		name string
		key  uint64
		at   time.Duration
		new  bool
	}{
		{"repeat at once", 1, 0, false},
		{"another key, next generation", 2, span + time.Minute, true},
		{"repeat just before the TTL", 1, ttl - time.Nanosecond, false},
		{"repeat at the TTL", 1, ttl, false}, // kept up to TTL+span
		{"repeat after TTL+span", 1, ttl + span, true},
		{"the other key is still remembered", 2, ttl + span, false},
	}
	for _, s := range steps {
		if got := d.markNew(s.key, t0.Add(s.at)); got != s.new {
			t.Errorf("%s: new = %v, want %v", s.name, got, s.new)
		}
	}
}

func TestDedupeSetMemoryIsBounded(t *testing.T) {
	const ttl = time.Minute
	d := newDedupeSet(ttl)
	t0 := time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC)
	// One key a second for an hour: about TTL+span seconds' worth remain.
	for i := 0; i < 3600; i++ {
		d.markNew(uint64(i), t0.Add(time.Duration(i)*time.Second))
	}
	limit := int((ttl + ttl/dedupeGenerations) / time.Second)
	if n := d.len(); n < int(ttl/time.Second) || n > limit+1 {
		t.Errorf("%d keys remembered, want between %d and %d", n, int(ttl/time.Second), limit+1)
	}
	if g := len(d.gens); g > dedupeGenerations+2 {
		t.Errorf("%d generations, want at most %d", g, dedupeGenerations+2)
	}
}
