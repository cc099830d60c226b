package sim

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"reelfeed/catalog"
	"reelfeed/event"
	"reelfeed/sim/client"
	"reelfeed/sim/world"
)

// serverPolicy serves what the reelfeed server recommends. It loads the
// world through the API, asks for feeds, reports reactions, and between
// rounds waits for the server to apply them and runs its background jobs,
// standing in for the time that passes between two sessions.
type serverPolicy struct {
	c    *client.Client
	opts Options
	w    *world.World
	jobs *jobRunner

	mu      sync.Mutex
	applied map[string]int64 // user → events (not impressions) posted so far
}

func newServerPolicy(t Target, o Options) (*serverPolicy, error) {
	c, err := client.New(t.BaseURL, t.Token, client.WithRetries(5))
	if err != nil {
		return nil, err
	}
	return &serverPolicy{
		c:       c,
		opts:    o,
		jobs:    &jobRunner{c: c, names: append([]string(nil), o.Jobs...), log: o.Progress},
		applied: map[string]int64{},
	}, nil
}

func (p *serverPolicy) name() string { return PolicyReelfeed }

func (p *serverPolicy) start(ctx context.Context, w *world.World, history [][]world.Exposure) error {
	p.w = w
	var total int64
	users := make([]catalog.User, 0, len(w.Users))
	for i, u := range w.Users {
		users = append(users, u.Meta)
		for _, x := range history[i] {
			total += int64(len(x.Events(u.Meta.ID)))
		}
	}
	videos := make([]catalog.Video, len(w.Videos))
	for i, v := range w.Videos {
		videos[i] = v.Meta
	}
	l := &loader{c: p.c, conc: p.opts.Concurrency, bar: newBar(p.opts.Progress, int64(len(users)+len(videos))+total, "loading the world")}
	defer l.finishBar()

	if err := l.upsertVideos(ctx, videos); err != nil {
		return err
	}
	if err := l.putUsers(ctx, users); err != nil {
		return err
	}
	// History events are enriched from the catalog when they arrive, so
	// the videos must be in it first.
	if err := p.waitVideos(ctx, videos); err != nil {
		return err
	}
	wants := make([]userWant, 0, len(w.Users))
	err := l.postEvents(ctx, len(w.Users), func(i int) []event.Event {
		var evs []event.Event
		for _, x := range history[i] {
			evs = append(evs, x.Events(w.Users[i].Meta.ID)...)
		}
		wants = append(wants, userWant{w.Users[i].Meta.ID, p.count(w.Users[i].Meta.ID, evs)})
		return evs
	})
	if err != nil {
		return err
	}
	l.finishBar()
	if err := p.catchUp(ctx, wants); err != nil {
		return err
	}
	return p.jobs.run(ctx)
}

// count adds the events (impressions aside) posted for the user and
// returns the user's total so far.
func (p *serverPolicy) count(userID string, evs []event.Event) int64 {
	var n int64
	for _, ev := range evs {
		if ev.Type != event.Impression {
			n++
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.applied[userID] += n
	return p.applied[userID]
}

func (p *serverPolicy) waitVideos(ctx context.Context, videos []catalog.Video) error {
	if len(videos) == 0 {
		return nil
	}
	// The last video of each batch, and the very last: batches are applied
	// as units, so these show the catalog caught up.
	var ids []string
	for i := client.MaxBatch - 1; i < len(videos); i += client.MaxBatch {
		ids = append(ids, videos[i].ID)
	}
	ids = append(ids, videos[len(videos)-1].ID)
	return p.tolerateLag(waitVideos(ctx, p.c, ids, p.opts.Concurrency, p.opts.CatchUpTimeout))
}

func (p *serverPolicy) catchUp(ctx context.Context, wants []userWant) error {
	return p.tolerateLag(waitApplied(ctx, p.c, sampleWants(wants), p.opts.Concurrency, p.opts.CatchUpTimeout))
}

// tolerateLag turns a server that is slow to catch up into a warning: the
// run goes on, the numbers will show it.
func (p *serverPolicy) tolerateLag(err error) error {
	if errors.Is(err, errBehind) {
		fmt.Fprintf(p.opts.Progress, "warning: %v; going on\n", err)
		return nil
	}
	return err
}

func (p *serverPolicy) beginRound(ctx context.Context, ch world.Changes) error {
	l := &loader{c: p.c, conc: p.opts.Concurrency}
	videos := make([]catalog.Video, len(ch.NewVideos))
	for i, v := range ch.NewVideos {
		videos[i] = v.Meta
	}
	if err := l.upsertVideos(ctx, videos); err != nil {
		return err
	}
	users := make([]catalog.User, len(ch.NewUsers))
	for i, u := range ch.NewUsers {
		users[i] = u.Meta
	}
	if err := l.putUsers(ctx, users); err != nil {
		return err
	}
	return p.waitVideos(ctx, videos)
}

func (p *serverPolicy) recommend(ctx context.Context, u *world.User, _ map[int]struct{}, _, count int) (recommendation, error) {
	f, err := p.c.Feed(ctx, client.FeedQuery{UserID: u.Meta.ID, Count: count, Region: u.Meta.Region, Device: u.Meta.Device})
	if err != nil {
		return recommendation{}, err
	}
	rec := recommendation{requestID: f.RequestID, videos: make([]*world.Video, 0, len(f.Items))}
	for _, it := range f.Items {
		if v, ok := p.w.Video(it.VideoID); ok {
			rec.videos = append(rec.videos, v)
		} else {
			rec.foreign++
		}
	}
	return rec, nil
}

func (p *serverPolicy) feedback(ctx context.Context, u *world.User, evs []event.Event) error {
	for len(evs) > 0 {
		part := evs[:min(len(evs), client.MaxBatch)]
		if _, err := p.c.PostEvents(ctx, part); err != nil {
			return err
		}
		p.count(u.Meta.ID, part)
		evs = evs[len(part):]
	}
	return nil
}

func (p *serverPolicy) endRound(ctx context.Context, ch world.Changes, sessions []*session) error {
	wants := make([]userWant, 0, len(sessions))
	p.mu.Lock()
	for _, s := range sessions {
		if len(s.items) > 0 {
			wants = append(wants, userWant{s.user.Meta.ID, p.applied[s.user.Meta.ID]})
		}
	}
	p.mu.Unlock()
	if err := p.catchUp(ctx, wants); err != nil {
		return err
	}
	if (ch.Round+1)%p.opts.JobsEvery == 0 {
		return p.jobs.run(ctx)
	}
	return nil
}
