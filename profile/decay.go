package profile

import (
	"cmp"
	"errors"
	"fmt"
	"iter"
	"math"
	"slices"
	"time"

	"reelfeed/event"
)

// ErrInvalidEvent is wrapped by Apply's error when a batch holds an event no
// backend can apply (no user, no id, unknown type, no time). Such a batch is
// rejected whole: retrying it cannot succeed, so callers should drop it.
var ErrInvalidEvent = errors.New("profile: invalid event")

// pruneFloor is the magnitude below which a decayed interest no longer
// influences anything; reads hide such entries and Prune deletes them.
const pruneFloor = 1e-3

// maxDedupeMarks caps remembered event ids per user, so one very active (or
// abusive) user cannot grow the dedupe set without bound within DedupeTTL.
// Redeliveries arrive within minutes, far inside this many events.
const maxDedupeMarks = 10000

// Interest kinds, in Profile order. The letter prefixes Redis hash fields.
const (
	kindTag = iota
	kindCategory
	kindUploader
	numKinds
)

var kindPrefix = [numKinds]byte{'t', 'c', 'u'}

// Set membership an event type implies.
const (
	setPlayed = 1 << iota
	setPositive
	setShown
)

func setsOf(t event.Type) int {
	var s int
	if t.Played() {
		s |= setPlayed
	}
	switch t {
	case event.Complete, event.Like, event.Comment, event.Share:
		s |= setPositive
	case event.Impression:
		s |= setShown
	}
	return s
}

// withDefaults fills every unset (zero or negative) field from
// DefaultConfig, so a partially written config section still yields a store
// with bounded memory and sane decay.
func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.Weights == ([event.NumTypes]float64{}) {
		c.Weights = d.Weights
	}
	durations := []struct{ v, def *time.Duration }{
		{&c.ShortHalfLife, &d.ShortHalfLife}, {&c.ShortWindow, &d.ShortWindow},
		{&c.LongHalfLife, &d.LongHalfLife}, {&c.LongWindow, &d.LongWindow},
		{&c.PlayedTTL, &d.PlayedTTL}, {&c.ShownTTL, &d.ShownTTL}, {&c.DedupeTTL, &d.DedupeTTL},
	}
	for _, f := range durations {
		if *f.v <= 0 {
			*f.v = *f.def
		}
	}
	ints := []struct{ v, def *int }{
		{&c.MaxPlayed, &d.MaxPlayed}, {&c.MaxShown, &d.MaxShown}, {&c.MaxInterests, &d.MaxInterests},
	}
	for _, f := range ints {
		if *f.v <= 0 {
			*f.v = *f.def
		}
	}
	return c
}

// retention is how long a user's state can matter after their last event:
// past it the whole user is forgotten (Redis keys expire, Prune deletes).
func (c Config) retention() time.Duration {
	return max(c.ShortWindow, c.LongWindow, c.PlayedTTL, c.ShownTTL, c.DedupeTTL)
}

// slack is how far a bounded collection may overshoot its cap before it is
// trimmed back, so trimming (a sort) is amortised over many writes instead
// of paid on every one. Reads never show more than the cap.
func slack(limit int) int { return limit / 4 }

// interest is one affinity score held as its value at its own latest event
// time: merging two such pairs gives the same result in any arrival order.
type interest struct {
	short, long float64
	at          int64 // unix ms of the latest event merged in
}

// decay holds the Config durations as float milliseconds, the unit every
// stored time uses.
type decay struct {
	shortHalf, longHalf     float64
	shortWindow, longWindow int64
}

func newDecay(c Config) decay {
	return decay{
		shortHalf:   float64(c.ShortHalfLife.Milliseconds()),
		longHalf:    float64(c.LongHalfLife.Milliseconds()),
		shortWindow: c.ShortWindow.Milliseconds(),
		longWindow:  c.LongWindow.Milliseconds(),
	}
}

// merge adds weight w observed at time at. The result is the sum of all
// weights, each decayed to the latest time seen; the Redis script does the
// same arithmetic in the same order.
func (d decay) merge(c interest, exists bool, w float64, at int64) interest {
	switch {
	case !exists:
		return interest{short: w, long: w, at: at}
	case at >= c.at:
		dt := float64(at - c.at)
		return interest{
			short: c.short*math.Exp2(-dt/d.shortHalf) + w,
			long:  c.long*math.Exp2(-dt/d.longHalf) + w,
			at:    at,
		}
	default:
		dt := float64(c.at - at)
		c.short += w * math.Exp2(-dt/d.shortHalf)
		c.long += w * math.Exp2(-dt/d.longHalf)
		return c
	}
}

// valuesAt decays c to now. ok is false for a term whose window has passed
// or whose magnitude fell below pruneFloor. Times after now (client clock
// skew) are read as now rather than amplified.
func (d decay) valuesAt(c interest, now int64) (short float64, shortOK bool, long float64, longOK bool) {
	age := max(now-c.at, 0)
	if age <= d.longWindow {
		long = c.long * math.Exp2(-float64(age)/d.longHalf)
		longOK = math.Abs(long) >= pruneFloor
	}
	if age <= d.shortWindow {
		short = c.short * math.Exp2(-float64(age)/d.shortHalf)
		shortOK = math.Abs(short) >= pruneFloor
	}
	return short, shortOK, long, longOK
}

// prunable reports whether c can no longer show up in any read at or after now.
func (d decay) prunable(c interest, now int64) bool {
	_, shortOK, _, longOK := d.valuesAt(c, now)
	return !shortOK && !longOK
}

// rank orders interests by strength: log2 of the long-term magnitude decayed
// to any common time t is rank - t/longHalf, so the order never changes as
// time passes and eviction agrees with every later read.
func (d decay) rank(c interest) float64 {
	if c.long == 0 {
		return math.Inf(-1)
	}
	return math.Log2(math.Abs(c.long)) + float64(c.at)/d.longHalf
}

type rankedKey[K any] struct {
	key  K
	name string
	rank float64
}

// weakest returns the keys of all but the limit strongest entries, weakest
// first; ties break by name so every backend evicts the same ones.
func weakest[K any](d decay, entries iter.Seq2[K, interest], name func(K) string, n, limit int) []K {
	if n <= limit {
		return nil
	}
	ranked := make([]rankedKey[K], 0, n)
	for k, c := range entries {
		ranked = append(ranked, rankedKey[K]{k, name(k), d.rank(c)})
	}
	slices.SortFunc(ranked, func(a, b rankedKey[K]) int {
		if c := cmp.Compare(a.rank, b.rank); c != 0 {
			return c
		}
		return cmp.Compare(a.name, b.name)
	})
	out := make([]K, 0, len(ranked)-limit)
	for _, r := range ranked[:max(len(ranked)-limit, 0)] {
		out = append(out, r.key)
	}
	return out
}

// read decays entries to now into short and long, showing at most the
// limit strongest live entries.
func (d decay) read(entries iter.Seq2[string, interest], now int64, limit int, short, long map[string]float64) {
	for k, c := range entries {
		s, sOK, l, lOK := d.valuesAt(c, now)
		if sOK {
			short[k] = s
		}
		if lOK {
			long[k] = l
		}
	}
	live := len(long)
	for k := range short {
		if _, ok := long[k]; !ok {
			live++
		}
	}
	if live <= limit {
		return
	}
	liveEntries := func(yield func(string, interest) bool) {
		for k, c := range entries {
			_, inShort := short[k]
			_, inLong := long[k]
			if (inShort || inLong) && !yield(k, c) {
				return
			}
		}
	}
	for _, k := range weakest(d, liveEntries, func(s string) string { return s }, live, limit) {
		delete(short, k)
		delete(long, k)
	}
}

// oldest returns the keys of all but the keep newest entries of a timed set,
// oldest first; equal times break by name, as a Redis sorted set orders
// equal scores by member.
func oldest[K comparable](set map[K]int64, keep int, name func(K) string) []K {
	if len(set) <= keep {
		return nil
	}
	type timed struct {
		key  K
		name string
		at   int64
	}
	all := make([]timed, 0, len(set))
	for k, at := range set {
		all = append(all, timed{k, name(k), at})
	}
	slices.SortFunc(all, func(a, b timed) int {
		if c := cmp.Compare(a.at, b.at); c != 0 {
			return c
		}
		return cmp.Compare(a.name, b.name)
	})
	out := make([]K, 0, len(all)-keep)
	for _, t := range all[:len(all)-keep] {
		out = append(out, t.key)
	}
	return out
}

// validate rejects the whole batch when any event cannot be applied, before
// anything is written, so a bad batch never half-applies.
func validate(events []event.Event) error {
	for i := range events {
		e := &events[i]
		var field string
		switch {
		case e.UserID == "":
			field = "user_id"
		case e.ID == "":
			field = "event_id"
		case !e.Type.Valid():
			field = "type"
		case e.TS.IsZero():
			field = "ts"
		default:
			continue
		}
		return fmt.Errorf("%w: event %d: missing or invalid %s", ErrInvalidEvent, i, field)
	}
	return nil
}

// eachInterestKey calls fn for every distinct interest key an event touches.
func eachInterestKey(e *event.Event, fn func(kind int, key string)) {
	for i, t := range e.Tags {
		if t != "" && !slices.Contains(e.Tags[:i], t) {
			fn(kindTag, t)
		}
	}
	if e.Category != "" {
		fn(kindCategory, e.Category)
	}
	if e.UploaderID != "" {
		fn(kindUploader, e.UploaderID)
	}
}

// idHash is FNV-1a 64 of an event id: what dedupe remembers instead of the
// id itself. Both backends use it, so it is part of the storage format.
func idHash(id string) uint64 {
	const offset, prime = 14695981039346656037, 1099511628211
	h := uint64(offset)
	for i := 0; i < len(id); i++ {
		h ^= uint64(id[i])
		h *= prime
	}
	return h
}

func newProfile(userID string) *Profile {
	return sizedProfile(userID, [numKinds]int{}, 0, 0, 0)
}

// sizedProfile returns an empty profile whose maps are allocated for about
// the given entry counts, so filling them never rehashes.
func sizedProfile(userID string, interests [numKinds]int, played, positive, shown int) *Profile {
	in := func() Interests {
		return Interests{
			Tags:       make(map[string]float64, interests[kindTag]),
			Categories: make(map[string]float64, interests[kindCategory]),
			Uploaders:  make(map[string]float64, interests[kindUploader]),
		}
	}
	return &Profile{
		UserID:    userID,
		ShortTerm: in(),
		LongTerm:  in(),
		Played:    make(map[string]time.Time, played),
		Positive:  make(map[string]time.Time, positive),
		Shown:     make(map[string]time.Time, shown),
	}
}

// kindMaps returns the maps of in for each kind, indexed like kindPrefix.
func (in Interests) kindMaps() [numKinds]map[string]float64 {
	return [numKinds]map[string]float64{in.Tags, in.Categories, in.Uploaders}
}

func fromMillis(ms int64) time.Time { return time.UnixMilli(ms).UTC() }
