package rank

import (
	"errors"
	"fmt"
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
// Memory is bounded by MaxPending. It is safe for concurrent use.
type Joiner struct {
	cfg                JoinConfig
	positive, negative [event.NumTypes]bool

	mu      sync.Mutex
	pending map[joinKey]*pendingSample
	queue   []*pendingSample // by arrival; closed entries are skipped lazily
	head    int
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

type pendingSample struct {
	key    joinKey
	imp    event.Event
	closed bool
}

// NewJoiner returns a joiner.
func NewJoiner(cfg JoinConfig) (*Joiner, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	j := &Joiner{cfg: cfg, pending: map[joinKey]*pendingSample{}, early: map[joinKey]earlyLabel{}}
	for _, t := range cfg.Positive {
		j.positive[t] = true
	}
	for _, t := range cfg.Negative {
		j.negative[t] = true
	}
	return j, nil
}

// Observe takes one event, in stream order.
func (j *Joiner) Observe(e event.Event) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if e.TS.After(j.mark) {
		j.mark = e.TS
	}
	key := joinKey{e.UserID, e.VideoID}
	if e.Type == event.Impression {
		if len(e.Features) == 0 {
			j.stats.NoFeatures++
			return
		}
		// Shown again before any label: the earlier showing did not
		// engage the user, and the new one carries the fresher features.
		if old := j.pending[key]; old != nil {
			j.close(old, 0, ReasonTimeout)
			j.stats.Expired++
		}
		for len(j.pending) >= j.cfg.MaxPending {
			j.dropOldest()
		}
		p := &pendingSample{key: key, imp: e}
		j.pending[key] = p
		j.queue = append(j.queue, p)
		j.compact()
		if lbl, ok := j.early[key]; ok {
			delete(j.early, key)
			j.label(p, lbl.typ)
		}
		return
	}
	if !e.Type.Valid() || !(j.positive[e.Type] || j.negative[e.Type]) {
		return
	}
	p := j.pending[key]
	if p == nil {
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
	if e.TS.Sub(p.imp.TS) > j.cfg.Window {
		return
	}
	j.label(p, e.Type)
}

// label closes p with the label t gives it.
func (j *Joiner) label(p *pendingSample, t event.Type) {
	if j.positive[t] {
		j.close(p, 1, t.String())
		j.stats.Positive++
	} else {
		j.close(p, 0, t.String())
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

func (j *Joiner) close(p *pendingSample, label float32, reason string) {
	p.closed = true
	delete(j.pending, p.key)
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
	j.ready = append(j.ready, Sample{
		UserID:    p.imp.UserID,
		VideoID:   p.imp.VideoID,
		RequestID: p.imp.RequestID,
		TS:        p.imp.TS,
		Label:     label,
		Reason:    reason,
		Features:  p.imp.Features,
	})
}

func (j *Joiner) dropOldest() {
	for j.head < len(j.queue) {
		p := j.queue[j.head]
		j.queue[j.head] = nil
		j.head++
		if !p.closed {
			p.closed = true
			delete(j.pending, p.key)
			j.stats.Dropped++
			return
		}
	}
}

// compact drops the queue's consumed prefix and closed entries once they
// outweigh the live ones, keeping the queue proportional to pending.
func (j *Joiner) compact() {
	if len(j.queue)-j.head <= 2*len(j.pending)+1024 && j.head <= len(j.queue)/2 {
		return
	}
	live := make([]*pendingSample, 0, len(j.pending)+1024)
	for _, p := range j.queue[j.head:] {
		if !p.closed {
			live = append(live, p)
		}
	}
	j.queue, j.head = live, 0
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
	for j.head < len(j.queue) {
		p := j.queue[j.head]
		if !p.closed {
			if now.Sub(p.imp.TS) <= j.cfg.Window {
				break
			}
			j.close(p, 0, ReasonTimeout)
			j.stats.Expired++
		}
		j.queue[j.head] = nil
		j.head++
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
