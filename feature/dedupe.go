package feature

import "time"

// dedupeGenerations is how many generations share one TTL: more means an
// applied id is forgotten closer to exactly TTL after it was applied, at
// the price of more map lookups per check.
const dedupeGenerations = 8

// minDedupeSpan keeps a tiny TTL from creating a generation per insert.
const minDedupeSpan = time.Millisecond

// dedupeSet remembers applied event keys for at least ttl and at most
// ttl+span after they were applied. Keys live in time generations, so
// forgetting is dropping a whole map: no per-key timestamps, no sweeps, and
// memory is returned to the runtime (Go maps never shrink). Not safe for
// concurrent use.
type dedupeSet struct {
	ttl, span time.Duration
	gens      []dedupeGen // oldest first; the last one takes inserts
}

type dedupeGen struct {
	start time.Time
	keys  map[uint64]struct{}
}

func newDedupeSet(ttl time.Duration) dedupeSet {
	return dedupeSet{ttl: ttl, span: max(ttl/dedupeGenerations, minDedupeSpan)}
}

// markNew records key as applied at now and reports whether it was new.
func (d *dedupeSet) markNew(key uint64, now time.Time) bool {
	d.expire(now)
	for i := range d.gens {
		if _, ok := d.gens[i].keys[key]; ok {
			return false
		}
	}
	if n := len(d.gens); n == 0 || now.Sub(d.gens[n-1].start) >= d.span {
		d.gens = append(d.gens, dedupeGen{start: now, keys: make(map[uint64]struct{})})
	}
	d.gens[len(d.gens)-1].keys[key] = struct{}{}
	return true
}

// expire drops generations whose every key was applied at least ttl ago:
// a generation takes inserts only during its first span.
func (d *dedupeSet) expire(now time.Time) {
	k := 0
	for k < len(d.gens) && now.Sub(d.gens[k].start) >= d.span+d.ttl {
		k++
	}
	if k == 0 {
		return
	}
	n := copy(d.gens, d.gens[k:])
	clear(d.gens[n:])
	d.gens = d.gens[:n]
}

// len is the number of keys remembered.
func (d *dedupeSet) len() int {
	n := 0
	for i := range d.gens {
		n += len(d.gens[i].keys)
	}
	return n
}
