package feature

import (
	"fmt"
	"time"

	"reelfeed/event"
)

// Window semantics, shared by every backend so they return identical numbers:
//
// An event is counted in a time bucket by its event time: a minute bucket
// for the hour window and an hour bucket for the day window. Reading at now,
//
//   - Hour counts the minute buckets that start after now-1h: the current
//     minute and the 59 before it. An event leaves the hour window up to one
//     minute before it is an hour old, and never counts once it is older.
//   - Day counts the hour buckets that start after now-24h: the current hour
//     and the 23 before it (edge accurate to an hour).
//   - Lifetime counts everything.
//
// Events dated after now (a client clock running ahead) count in every
// window as of their own time: they are never dropped.
//
// Each video keeps a ring of the most recent buckets, measured from the
// newest event applied to it; buckets that fall out of the ring are pruned
// on write. The rings are long enough that any event up to futureSkew ahead
// of the reader leaves that reader's windows exact.
const (
	minuteSeconds = 60
	hourSeconds   = 3600

	hourWindowMinutes = 60
	dayWindowHours    = 24

	// futureSkewMinutes is how far ahead of the reader's clock a video's
	// newest event may be dated before older buckets the reader still
	// needs would be pruned. Ingestion should reject events further ahead.
	futureSkewMinutes = 30

	// minuteRing and hourRing are the bucket counts retained behind the
	// newest bucket. The reader at now needs minute buckets from
	// nowMinute-59 on; the newest minute is at most nowMinute+30, so 90
	// buckets cover it. Likewise a 30 minute skew crosses at most one hour
	// boundary, so 24+1 hour buckets cover the day window.
	minuteRing = hourWindowMinutes + futureSkewMinutes
	hourRing   = dayWindowHours + 1
)

// FutureSkew is how far ahead of a reader's clock an event may be dated and
// still leave every window exact for that reader. Ingestion should reject
// events dated further ahead.
const FutureSkew = futureSkewMinutes * time.Minute

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

// minuteOf returns the index of the minute bucket holding t.
func minuteOf(t time.Time) int64 { return floorDiv(t.Unix(), minuteSeconds) }

// hourOfMinute returns the index of the hour bucket holding minute bucket m.
func hourOfMinute(m int64) int64 { return floorDiv(m, hourSeconds/minuteSeconds) }

// bucket is one time bucket of counters. Per-bucket counts stay far below
// 2^32 (that would be 70 million events a second on one video), and the
// narrow type halves the memory a busy video's rings take.
type bucket struct {
	idx int64
	n   [event.NumTypes]uint32
}

// series is one video's bucketed counters. It is not safe for concurrent
// mutation; readers may share a series nobody mutates any more.
type series struct {
	seen    bool
	newest  int64 // newest minute bucket applied; meaningful once seen
	life    event.Counts
	minutes []bucket // ascending idx, every idx > newest-minuteRing
	hours   []bucket // ascending idx, every idx > hourOfMinute(newest)-hourRing
}

// added reports where add counted an event, so a caller keeping window sums
// can update them without re-summing.
type added struct {
	minute, hour bool // the event landed in that ring
	advanced     bool // the newest bucket moved: older buckets may be gone
}

// add counts one event of type t at minute bucket m.
func (s *series) add(m int64, t event.Type) added {
	var a added
	if !s.seen || m > s.newest {
		a.advanced = s.seen
		s.advance(m)
	}
	s.life[t]++
	if m > s.newest-minuteRing {
		s.minutes = incr(s.minutes, m, t)
		a.minute = true
	}
	if h := hourOfMinute(m); h > hourOfMinute(s.newest)-hourRing {
		s.hours = incr(s.hours, h, t)
		a.hour = true
	}
	return a
}

func (s *series) advance(m int64) {
	s.seen = true
	s.newest = m
	s.minutes = dropThrough(s.minutes, m-minuteRing)
	s.hours = dropThrough(s.hours, hourOfMinute(m)-hourRing)
}

// dropThrough removes the buckets with idx <= last from ascending bs.
func dropThrough(bs []bucket, last int64) []bucket {
	k := 0
	for k < len(bs) && bs[k].idx <= last {
		k++
	}
	if k == 0 {
		return bs
	}
	n := copy(bs, bs[k:])
	return bs[:n]
}

// incr adds one event of type t to bucket idx of ascending bs. Events mostly
// arrive in time order, so the search starts from the newest bucket.
func incr(bs []bucket, idx int64, t event.Type) []bucket {
	i := len(bs)
	for i > 0 && bs[i-1].idx > idx {
		i--
	}
	if i > 0 && bs[i-1].idx == idx {
		bs[i-1].n[t]++
		return bs
	}
	bs = append(bs, bucket{})
	copy(bs[i+1:], bs[i:])
	bs[i] = bucket{idx: idx}
	bs[i].n[t] = 1
	return bs
}

// windows sums the hour and day windows for a reader whose clock is in
// minute bucket nowMinute. The result depends on the minute only.
func (s *series) windows(nowMinute int64) (hour, day event.Counts) {
	sumFrom(&hour, s.minutes, nowMinute-(hourWindowMinutes-1))
	sumFrom(&day, s.hours, hourOfMinute(nowMinute)-(dayWindowHours-1))
	return hour, day
}

func sumFrom(dst *event.Counts, bs []bucket, first int64) {
	for i := len(bs) - 1; i >= 0 && bs[i].idx >= first; i-- {
		for t, n := range bs[i].n {
			dst[t] += int64(n)
		}
	}
}

// validate rejects a batch that cannot be applied exactly once, before any
// of it is applied.
func validate(events []event.Event) error {
	for i := range events {
		e := &events[i]
		switch {
		case e.ID == "":
			return fmt.Errorf("feature: event %d: missing event id", i)
		case e.VideoID == "":
			return fmt.Errorf("feature: event %d: missing video id", i)
		case !e.Type.Valid():
			return fmt.Errorf("feature: event %d: invalid type %d", i, uint8(e.Type))
		}
	}
	return nil
}

// dedupeKey identifies an applied event: a 64-bit FNV-1a hash of the video
// and event ids. It is stable across processes, because the Redis backend
// persists it. Dedupe is per video, which is all Redis Cluster can do
// atomically; an event id always belongs to one video.
func dedupeKey(videoID, eventID string) uint64 {
	const (
		offset = 14695981039346656037
		prime  = 1099511628211
	)
	h := uint64(offset)
	for i := 0; i < len(videoID); i++ {
		h ^= uint64(videoID[i])
		h *= prime
	}
	// 0xff never occurs in UTF-8, so ("ab","c") and ("a","bc") differ.
	h ^= 0xff
	h *= prime
	for i := 0; i < len(eventID); i++ {
		h ^= uint64(eventID[i])
		h *= prime
	}
	return h
}
