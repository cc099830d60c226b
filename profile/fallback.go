package profile

import (
	"container/list"
	"context"
	"sync"
	"time"

	"reelfeed/event"
)

// Fallback keeps feeds served while the primary store (Redis) is down: it
// remembers the last profile it read for each recent user (bounded LRU)
// and, when the primary fails, answers from that copy — or with an empty
// profile for a user it never saw — instead of failing the request. The
// played/shown guarantees degrade to "as of the last successful read" plus
// what the feed itself remembers having served meanwhile. Writes are never
// absorbed: Apply fails, so the events wait in the stream until the
// primary is back.
type Fallback struct {
	primary  Store
	max      int
	degraded func(op string) // called per answer from the copy; may be nil

	mu    sync.Mutex
	lru   *list.List // of *cachedProfile, most recent first
	index map[string]*list.Element
}

type cachedProfile struct {
	user string
	p    *Profile
}

// NewFallback wraps primary, remembering up to maxUsers profiles.
func NewFallback(primary Store, maxUsers int, degraded func(op string)) *Fallback {
	if maxUsers < 1 {
		maxUsers = 1
	}
	return &Fallback{primary: primary, max: maxUsers, degraded: degraded, lru: list.New(), index: map[string]*list.Element{}}
}

// Apply implements Store; it never hides a failure.
func (f *Fallback) Apply(ctx context.Context, events []event.Event) (int, error) {
	return f.primary.Apply(ctx, events)
}

// Get implements Store: the primary's answer, else the remembered copy.
func (f *Fallback) Get(ctx context.Context, userID string, now time.Time) (*Profile, error) {
	p, err := f.primary.Get(ctx, userID, now)
	if err == nil {
		f.remember(userID, p)
		return p, nil
	}
	if ctx.Err() != nil {
		return nil, err
	}
	if f.degraded != nil {
		f.degraded("get")
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if el, ok := f.index[userID]; ok {
		f.lru.MoveToFront(el)
		return el.Value.(*cachedProfile).p, nil
	}
	return emptyProfile(userID), nil
}

func (f *Fallback) remember(userID string, p *Profile) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if el, ok := f.index[userID]; ok {
		el.Value.(*cachedProfile).p = p
		f.lru.MoveToFront(el)
		return
	}
	f.index[userID] = f.lru.PushFront(&cachedProfile{user: userID, p: p})
	for f.lru.Len() > f.max {
		last := f.lru.Back()
		f.lru.Remove(last)
		delete(f.index, last.Value.(*cachedProfile).user)
	}
}

func emptyProfile(userID string) *Profile {
	return &Profile{
		UserID:    userID,
		ShortTerm: Interests{Tags: map[string]float64{}, Categories: map[string]float64{}, Uploaders: map[string]float64{}},
		LongTerm:  Interests{Tags: map[string]float64{}, Categories: map[string]float64{}, Uploaders: map[string]float64{}},
		Played:    map[string]time.Time{},
		Positive:  map[string]time.Time{},
		Shown:     map[string]time.Time{},
	}
}

// Prune implements Store.
func (f *Fallback) Prune(ctx context.Context, now time.Time) (int, error) {
	return f.primary.Prune(ctx, now)
}

// Ping implements Store: the primary's health (readiness must say Redis is
// down even though reads are being answered).
func (f *Fallback) Ping(ctx context.Context) error { return f.primary.Ping(ctx) }

// Close implements Store.
func (f *Fallback) Close() error { return f.primary.Close() }
