package rank

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/maphash"
	"sync"
	"time"

	"reelfeed/event"
)

// JoinConfig tunes how impressions become labelled samples.
type JoinConfig struct {
	// Window is how long after an impression a labelling event counts
	// (rank.join.window).
	Window time.Duration
	// Positive event types label a sample 1 (rank.join.positive), Negative
	// ones 0 (rank.join.negative); an impression with neither within the
	// window is negative when the window closes.
	Positive []event.Type
	Negative []event.Type
	// MaxPending bounds the impressions waiting for a label, and the
	// labelled samples waiting for Flush; beyond it the oldest are dropped
	// and counted (rank.join.max_pending).
	MaxPending int
}

// DefaultJoinConfig returns the documented defaults.
func DefaultJoinConfig() JoinConfig {
	return JoinConfig{
		Window:     30 * time.Minute,
		Positive:   []event.Type{event.Complete, event.Like},
		Negative:   []event.Type{event.Skip, event.Dislike},
		MaxPending: 200_000,
	}
}

// Validate reports the first problem with c.
func (c JoinConfig) Validate() error {
	switch {
	case c.Window <= 0:
		return errors.New("rank: join window must be > 0")
	case len(c.Positive) == 0:
		return errors.New("rank: join needs at least one positive event type")
	case c.MaxPending < 1:
		return errors.New("rank: join max pending must be >= 1")
	}
	seen := map[event.Type]string{}
	for _, group := range []struct {
		name  string
		types []event.Type
	}{{"positive", c.Positive}, {"negative", c.Negative}} {
		for _, t := range group.types {
			if !t.Valid() || t == event.Impression {
				return fmt.Errorf("rank: %s join type %v is not a labelling event", group.name, t)
			}
			if other, dup := seen[t]; dup {
				return fmt.Errorf("rank: join type %v is both %s and %s", t, other, group.name)
			}
			seen[t] = group.name
		}
	}
	return nil
}

// JoinStats counts what the joiner did since it started.
type JoinStats struct {
	Pending    int    // impressions waiting for a label now
	Positive   uint64 // samples labelled positive
	Negative   uint64 // samples labelled negative by an event
	Expired    uint64 // samples labelled negative because the window closed
	Dropped    uint64 // impressions or samples dropped over MaxPending
	NoFeatures uint64 // impressions without logged features (not joinable)
}

// Joiner turns the event stream into labelled samples. Feed it every event
// in stream order with Observe; impressions carrying logged features open
// a pending sample per (user, video), a later labelling event by that user
// on that video within the window closes it, and Flush closes the ones
// whose window has passed and hands over everything closed.
//
// Pending impressions are stored without pointers: fixed-size entries in
// a queue, indexed by a hash of (user, video), with their strings and
// features copied into large byte chunks. A full joiner holds hundreds of
// thousands of them, and as individual events they were over a million
// heap objects for the garbage collector to mark on every cycle, which
// showed as feed latency spikes; this way it is a few hundred.
//
// Memory is bounded by MaxPending. It is safe for concurrent use.
type Joiner struct {
	cfg                JoinConfig
	positive, negative [event.NumTypes]bool
	seed               maphash.Seed // for pairHash

	mu sync.Mutex
	// pending maps pairHash(user, video) to the open entry's position in
	// queue. One entry per hash: see Observe for what a collision does.
	pending map[uint64]int
	queue   []pendingEntry // by arrival; closed entries are skipped lazily
	head    int
	arena   joinArena // the bytes of queue's entries
	ready   []Sample
	readyAt int // ready[:readyAt] were dropped over the bound
	stats   JoinStats
	mark    time.Time
	// early holds labelling events that arrived before their impression:
	// impressions travel on their own stream, published asynchronously, so
	// a client that reports at once can beat its impression to the joiner.
	// They wait EarlyGrace (by the events' arrival order, see Flush).
	early      map[joinKey]earlyLabel
	earlyQueue []joinKey
}

type earlyLabel struct {
	typ     event.Type
	arrived time.Time // wall time
}

// earlyGrace is how long a labelling event waits for its impression.
const earlyGrace = time.Minute

type joinKey struct{ user, video string }

// pendingEntry is an impression waiting for its label. It must stay free
// of pointers (that is the point, see Joiner): what a Sample needs of the
// impression's strings and features sits in the arena, user id, video id,
// request id and features back to back from off in chunk.
type pendingEntry struct {
	hash uint64 // pairHash(user, video), its key in Joiner.pending
	// The impression time, as Unix seconds and nanoseconds rather than
	// UnixNano, which cannot hold a time before 1678 (a zero TS from a
	// buggy client must still expire, not wrap around).
	sec  int64
	nsec int32
	// zone is the time's UTC offset in seconds when zoneKind is zoneFixed:
	// a *time.Location is a pointer, and samples are written out as JSON
	// with the offset they came in.
	zone     int32
	chunk    int32
	off      int32
	userLen  uint32
	videoLen uint32
	reqLen   uint32
	featLen  uint32
	zoneKind uint8
	closed   bool
}

const (
	zoneUTC uint8 = iota
	zoneLocal
	zoneFixed
)

func (p *pendingEntry) size() int {
	return int(p.userLen) + int(p.videoLen) + int(p.reqLen) + int(p.featLen)
}

// at is the impression time for comparisons, in whatever location.
func (p *pendingEntry) at() time.Time { return time.Unix(p.sec, int64(p.nsec)) }

// ts is the impression time as it was observed: the same instant and UTC
// offset, so a sample's JSON carries the same "ts". A named zone other
// than Local comes back as a fixed offset, and the monotonic clock
// reading, meaningless outside the process, is not kept.
func (p *pendingEntry) ts() time.Time {
	t := p.at()
	switch p.zoneKind {
	case zoneUTC:
		return t.UTC()
	case zoneLocal:
		return t // time.Unix is in Local
	}
	return t.In(time.FixedZone("", int(p.zone)))
}

func zoneOf(t time.Time) (kind uint8, offset int32) {
	switch t.Location() {
	case time.UTC:
		return zoneUTC, 0
	case time.Local:
		return zoneLocal, 0
	}
	_, off := t.Zone()
	return zoneFixed, int32(off)
}

// joinChunkSize is the arena's unit of allocation and release: big enough
// that the chunk table stays a few hundred pointers at MaxPending, small
// enough that a chunk pinned by a few open entries wastes little.
const joinChunkSize = 1 << 20

// joinArenaSpares is how many released chunks the arena keeps for reuse.
// Impressions expire in arrival order, so in steady state a chunk frees up
// about as often as one fills: one or two spares save allocating anew, and
// more would only hold memory.
const joinArenaSpares = 2

// joinArena holds the bytes of pending entries in chunks, appended to in
// order. Chunks are []byte, which the garbage collector does not scan.
type joinArena struct {
	chunks []arenaChunk // by index; released ones have buf == nil
	free   []int32      // indexes of released chunks, reused first
	spare  [][]byte     // released full-size chunks, empty
	cur    int32        // chunk being appended to; -1 before the first
	held   int          // bytes of chunks in use
	live   int          // bytes of open entries
}

type arenaChunk struct {
	buf  []byte
	live int32 // open entries in buf
}

// alloc reserves n bytes for one more open entry and returns where they are.
func (a *joinArena) alloc(n int) (chunk, off int32, dst []byte) {
	a.live += n
	if n > joinChunkSize {
		// Bigger than a chunk: its own, right-sized, released with it.
		c := a.newChunk(make([]byte, n))
		a.chunks[c].live = 1
		return c, 0, a.chunks[c].buf
	}
	if a.cur < 0 || len(a.chunks[a.cur].buf)+n > joinChunkSize {
		old := a.cur
		var buf []byte
		if k := len(a.spare); k > 0 {
			buf, a.spare[k-1] = a.spare[k-1], nil
			a.spare = a.spare[:k-1]
		} else {
			buf = make([]byte, 0, joinChunkSize)
		}
		a.cur = a.newChunk(buf)
		if old >= 0 && a.chunks[old].live == 0 {
			a.release(old)
		}
	}
	ch := &a.chunks[a.cur]
	o := len(ch.buf)
	ch.buf = ch.buf[:o+n]
	ch.live++
	return a.cur, int32(o), ch.buf[o : o+n : o+n]
}

func (a *joinArena) newChunk(buf []byte) int32 {
	a.held += cap(buf)
	if k := len(a.free); k > 0 {
		c := a.free[k-1]
		a.free = a.free[:k-1]
		a.chunks[c] = arenaChunk{buf: buf}
		return c
	}
	a.chunks = append(a.chunks, arenaChunk{buf: buf})
	return int32(len(a.chunks) - 1)
}

// done ends an entry of n bytes in chunk c.
func (a *joinArena) done(c int32, n int) {
	a.live -= n
	ch := &a.chunks[c]
	ch.live--
	switch {
	case ch.live > 0:
	case c == a.cur:
		ch.buf = ch.buf[:0] // nothing left to keep: start it over
	default:
		a.release(c)
	}
}

func (a *joinArena) release(c int32) {
	buf := a.chunks[c].buf
	a.held -= cap(buf)
	if cap(buf) == joinChunkSize && len(a.spare) < joinArenaSpares {
		a.spare = append(a.spare, buf[:0])
	}
	a.chunks[c] = arenaChunk{}
	a.free = append(a.free, c)
}

func (a *joinArena) bytes(p *pendingEntry) []byte {
	return a.chunks[p.chunk].buf[p.off : int(p.off)+p.size()]
}

// NewJoiner returns a joiner.
func NewJoiner(cfg JoinConfig) (*Joiner, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	j := &Joiner{
		cfg:     cfg,
		seed:    maphash.MakeSeed(),
		pending: map[uint64]int{},
		arena:   joinArena{cur: -1},
		early:   map[joinKey]earlyLabel{},
	}
	for _, t := range cfg.Positive {
		j.positive[t] = true
	}
	for _, t := range cfg.Negative {
		j.negative[t] = true
	}
	return j, nil
}

// pairHash is the pending index's key for (user, video). The user's
// length goes first so that no two pairs hash the same bytes ("ab", "c"
// and "a", "bc"); the seed is the Joiner's, so collisions cannot be
// engineered from outside.
func (j *Joiner) pairHash(user, video string) uint64 {
	var h maphash.Hash
	h.SetSeed(j.seed)
	var n [8]byte
	binary.LittleEndian.PutUint64(n[:], uint64(len(user)))
	h.Write(n[:])
	h.WriteString(user)
	h.WriteString(video)
	return h.Sum64()
}

// is reports whether p is the impression of (user, video), not another
// pair with the same hash.
func (j *Joiner) is(p *pendingEntry, user, video string) bool {
	b := j.arena.bytes(p)
	return string(b[:p.userLen]) == user && string(b[p.userLen:p.userLen+p.videoLen]) == video
}

// Observe takes one event, in stream order.
func (j *Joiner) Observe(e event.Event) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if e.TS.After(j.mark) {
		j.mark = e.TS
	}
	if e.Type == event.Impression {
		if len(e.Features) == 0 {
			j.stats.NoFeatures++
			return
		}
		h := j.pairHash(e.UserID, e.VideoID)
		// Shown again before any label: the earlier showing did not
		// engage the user, and the new one carries the fresher features.
		// The index holds one entry per hash, so another pair whose hash
		// collides (about one chance in 2^64 / MaxPending per impression)
		// is closed the same way: it loses its chance of a label, which
		// is the least wrong thing to do with it.
		if i, ok := j.pending[h]; ok {
			j.close(i, 0, ReasonTimeout)
			j.stats.Expired++
		}
		for len(j.pending) >= j.cfg.MaxPending {
			j.dropOldest()
		}
		j.add(h, &e)
		if len(j.early) > 0 {
			key := joinKey{e.UserID, e.VideoID}
			if lbl, ok := j.early[key]; ok {
				delete(j.early, key)
				j.label(len(j.queue)-1, lbl.typ)
			}
		}
		j.compact()
		return
	}
	if !e.Type.Valid() || !(j.positive[e.Type] || j.negative[e.Type]) {
		return
	}
	i, ok := j.pending[j.pairHash(e.UserID, e.VideoID)]
	// An entry of another pair with the same hash is not this label's
	// impression: the label waits as if it had come before it.
	if !ok || !j.is(&j.queue[i], e.UserID, e.VideoID) {
		key := joinKey{e.UserID, e.VideoID}
		if _, seen := j.early[key]; !seen || j.positive[e.Type] {
			if len(j.early) >= j.cfg.MaxPending {
				j.dropEarliest()
			}
			if !seen {
				j.earlyQueue = append(j.earlyQueue, key)
			}
			j.early[key] = earlyLabel{typ: e.Type, arrived: time.Now()}
		}
		return
	}
	if e.TS.Sub(j.queue[i].at()) > j.cfg.Window {
		return
	}
	j.label(i, e.Type)
}

// add opens a pending entry for the impression e, whose pairHash is h.
func (j *Joiner) add(h uint64, e *event.Event) {
	p := pendingEntry{
		hash:     h,
		sec:      e.TS.Unix(),
		nsec:     int32(e.TS.Nanosecond()),
		userLen:  uint32(len(e.UserID)),
		videoLen: uint32(len(e.VideoID)),
		reqLen:   uint32(len(e.RequestID)),
		featLen:  uint32(len(e.Features)),
	}
	p.zoneKind, p.zone = zoneOf(e.TS)
	var dst []byte
	p.chunk, p.off, dst = j.arena.alloc(p.size())
	n := copy(dst, e.UserID)
	n += copy(dst[n:], e.VideoID)
	n += copy(dst[n:], e.RequestID)
	copy(dst[n:], e.Features)
	j.pending[h] = len(j.queue)
	j.queue = append(j.queue, p)
}

// label closes queue[i] with the label t gives it.
func (j *Joiner) label(i int, t event.Type) {
	if j.positive[t] {
		j.close(i, 1, t.String())
		j.stats.Positive++
	} else {
		j.close(i, 0, t.String())
		j.stats.Negative++
	}
}

func (j *Joiner) dropEarliest() {
	for len(j.earlyQueue) > 0 {
		k := j.earlyQueue[0]
		j.earlyQueue = j.earlyQueue[1:]
		if _, ok := j.early[k]; ok {
			delete(j.early, k)
			return
		}
	}
}

// expireEarly forgets labelling events whose impression never came.
func (j *Joiner) expireEarly(wall time.Time) {
	for len(j.earlyQueue) > 0 {
		k := j.earlyQueue[0]
		lbl, ok := j.early[k]
		if ok && wall.Sub(lbl.arrived) < earlyGrace {
			break
		}
		delete(j.early, k)
		j.earlyQueue = j.earlyQueue[1:]
	}
	if len(j.earlyQueue) == 0 {
		j.earlyQueue = nil
	}
}

// close turns the open entry queue[i] into a sample.
func (j *Joiner) close(i int, label float32, reason string) {
	p := &j.queue[i]
	b := j.arena.bytes(p)
	// The sample outlives the arena's bytes, so it gets copies: one
	// string for the three ids, and the features.
	nu, nv, nr := int(p.userLen), int(p.videoLen), int(p.reqLen)
	ids := string(b[:nu+nv+nr])
	s := Sample{
		UserID:    ids[:nu],
		VideoID:   ids[nu : nu+nv],
		RequestID: ids[nu+nv:],
		TS:        p.ts(),
		Label:     label,
		Reason:    reason,
		Features:  append(json.RawMessage(nil), b[nu+nv+nr:]...),
	}
	j.end(i)
	if len(j.ready)-j.readyAt >= j.cfg.MaxPending {
		j.ready[j.readyAt] = Sample{}
		j.readyAt++
		j.stats.Dropped++
		if j.readyAt*2 > len(j.ready) {
			n := copy(j.ready, j.ready[j.readyAt:])
			clear(j.ready[n:])
			j.ready, j.readyAt = j.ready[:n], 0
		}
	}
	j.ready = append(j.ready, s)
}

// end closes the open entry queue[i] and gives back its arena bytes.
func (j *Joiner) end(i int) {
	p := &j.queue[i]
	p.closed = true
	delete(j.pending, p.hash)
	j.arena.done(p.chunk, p.size())
}

func (j *Joiner) dropOldest() {
	for j.head < len(j.queue) {
		i := j.head
		j.head++
		if !j.queue[i].closed {
			j.end(i)
			j.stats.Dropped++
			return
		}
	}
}

// compact drops the queue's consumed prefix and closed entries once they
// outweigh the live ones, keeping the queue proportional to pending, and
// then the arena's closed bytes likewise.
func (j *Joiner) compact() {
	if len(j.queue)-j.head > 2*len(j.pending)+1024 || j.head > len(j.queue)/2 {
		// In place: the queue holds no pointers, so its stale tail costs
		// the garbage collector nothing. The rules above let it reach about
		// 4×pending before compacting; only a queue left far bigger by a
		// burst is reallocated, with room for that, or it would regrow
		// (copying) between every two compactions.
		live := j.queue[:0]
		if cap(j.queue) > 8*(len(j.pending)+1024) {
			live = make([]pendingEntry, 0, 4*(len(j.pending)+1024))
		}
		for _, p := range j.queue[j.head:] {
			if !p.closed {
				j.pending[p.hash] = len(live)
				live = append(live, p)
			}
		}
		j.queue, j.head = live, 0
	}
	j.compactArena()
}

// compactArena moves the open entries' bytes to fresh chunks once closed
// ones hold most of the arena. A chunk is released only when all its
// entries are closed, and labels close entries out of arrival order: when
// most impressions are labelled quickly, the few that wait out the window
// would otherwise pin every chunk written since, many times the bytes
// pending. Each move copies at most as many bytes as have been appended
// since the last, so it costs a constant per byte observed.
func (j *Joiner) compactArena() {
	a := &j.arena
	if a.held <= 2*a.live+4*joinChunkSize {
		return
	}
	// Start a chunk of its own: the old chunks empty as their entries
	// move, roughly in order, and are released to become the next spares.
	if old := a.cur; old >= 0 {
		a.cur = -1
		if a.chunks[old].live == 0 {
			a.release(old)
		}
	}
	for i := j.head; i < len(j.queue); i++ {
		p := &j.queue[i]
		if p.closed || cap(a.chunks[p.chunk].buf) != joinChunkSize {
			continue // an entry bigger than a chunk has its own already
		}
		n := p.size()
		from, src := p.chunk, a.bytes(p)
		var dst []byte
		p.chunk, p.off, dst = a.alloc(n)
		copy(dst, src)
		a.done(from, n)
	}
}

// Flush closes, as negatives, the pending impressions whose window ended
// before now, and returns every sample closed since the last Flush, oldest
// closed first. Pass wall time when consuming live, or Watermark when
// replaying a stream faster than real time. Impressions are expired in
// arrival order, so one with an out-of-order timestamp may wait behind
// later ones.
func (j *Joiner) Flush(now time.Time) []Sample {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.expireEarly(time.Now())
	for ; j.head < len(j.queue); j.head++ {
		if p := &j.queue[j.head]; !p.closed {
			if now.Sub(p.at()) <= j.cfg.Window {
				break
			}
			j.close(j.head, 0, ReasonTimeout)
			j.stats.Expired++
		}
	}
	j.compact()
	if len(j.ready) == j.readyAt {
		return nil
	}
	out := append([]Sample(nil), j.ready[j.readyAt:]...)
	clear(j.ready)
	j.ready, j.readyAt = j.ready[:0], 0
	return out
}

// Watermark is the latest event time observed.
func (j *Joiner) Watermark() time.Time {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.mark
}

// Stats returns the joiner's counters.
func (j *Joiner) Stats() JoinStats {
	j.mu.Lock()
	defer j.mu.Unlock()
	s := j.stats
	s.Pending = len(j.pending)
	return s
}
