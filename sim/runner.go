package sim

import (
	"context"
	"fmt"
	"sync"
	"time"

	"reelfeed/event"
	"reelfeed/sim/world"
)

// session is one user's feed request in one round and what they did.
type session struct {
	user      *world.User
	cold      bool // the user's first round: they joined during the run
	requestID string
	items     []servedItem
	foreign   int
	repeats   int   // videos served that the user had already seen
	err       error // the feed request failed
	postErr   error // reporting the reactions failed
	events    []event.Event
}

type servedItem struct {
	video    *world.Video
	response world.Response
}

// policyResult is one policy's run over the world.
type policyResult struct {
	name    string
	summary Metrics
	rounds  []Metrics
	world   *world.World
}

// runner plays the rounds of one world under one policy.
type runner struct {
	opts      Options
	pol       policy
	wallStart time.Time
	exp       *exporter
	// onLoaded runs once the starting world is loaded; onRound after each round.
	onLoaded func(w *world.World) error
	onRound  func(round int, m Metrics)

	w          *world.World
	seen       []map[int]struct{}
	followed   []map[int]bool
	servedEver []bool
	distinct   int
	total      tally
}

// simStart is when the first round begins: rounds are laid end to end and
// the last one ends when the run starts, so no event is ever dated after
// the server's clock. An endless run (Demo) starts one round ago and then
// follows the wall clock.
func simStart(o Options, wallStart time.Time) time.Time {
	return wallStart.Add(-time.Duration(max(o.Rounds, 1)) * o.RoundSpan)
}

func (r *runner) run(ctx context.Context) (*policyResult, error) {
	o := r.opts
	start := simStart(o, r.wallStart)
	w, err := world.Generate(worldConfig(o, start))
	if err != nil {
		return nil, err
	}
	r.w = w
	creatorIndex := make(map[string]int, len(w.Creators))
	for i, c := range w.Creators {
		creatorIndex[c.ID] = i
	}
	history := make([][]world.Exposure, len(w.Users))
	for i, u := range w.Users {
		r.addUser(u, creatorIndex)
		history[i] = w.History(u)
		for _, x := range history[i] {
			r.seen[i][x.Video.Index] = struct{}{}
			if x.Response.Follow {
				r.followed[i][x.Video.Creator] = true
			}
			if r.exp != nil {
				if err := r.exp.writeEvents(x.Events(u.Meta.ID)); err != nil {
					return nil, err
				}
			}
		}
	}
	if err := r.pol.start(ctx, w, history); err != nil {
		return nil, fmt.Errorf("%s: loading the world: %w", r.pol.name(), err)
	}
	history = nil
	if r.onLoaded != nil {
		if err := r.onLoaded(w); err != nil {
			return nil, err
		}
	}

	res := &policyResult{name: r.pol.name(), world: w}
	prevEnd := start
	for round := 0; o.Rounds == 0 || round < o.Rounds; round++ {
		if ctx.Err() != nil {
			break
		}
		end := start.Add(time.Duration(round+1) * o.RoundSpan)
		if now := o.now(); end.After(now) {
			end = now
		}
		if end.Before(prevEnd) {
			end = prevEnd
		}
		ch, err := w.Advance(round, prevEnd, end)
		if err != nil {
			return nil, err
		}
		prevEnd = end
		m, err := r.playRound(ctx, ch, creatorIndex)
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			return nil, fmt.Errorf("%s round %d: %w", r.pol.name(), round+1, err)
		}
		res.rounds = append(res.rounds, m)
		if r.onRound != nil {
			r.onRound(round, m)
		}
		if o.Pause > 0 {
			t := time.NewTimer(o.Pause)
			select {
			case <-ctx.Done():
			case <-t.C:
			}
			t.Stop()
		}
	}
	res.summary = r.total.metrics(r.coverage())
	if r.exp != nil {
		if err := r.exp.finish(w); err != nil {
			return nil, err
		}
	}
	// An endless run ends when its context does; a bounded one must finish.
	if o.Rounds > 0 && ctx.Err() != nil {
		return nil, ctx.Err()
	}
	return res, nil
}

func worldConfig(o Options, start time.Time) world.Config {
	return world.Config{
		Seed:           o.Seed,
		Users:          o.Users,
		Videos:         o.Videos,
		HistoryPerUser: o.HistoryPerUser,
		NewUserRate:    o.NewUserRate,
		UploadRate:     o.UploadRate,
		Start:          start,
	}
}

func (r *runner) addUser(u *world.User, creatorIndex map[string]int) {
	r.seen = append(r.seen, map[int]struct{}{})
	followed := map[int]bool{}
	for _, id := range u.Meta.Follows {
		followed[creatorIndex[id]] = true
	}
	r.followed = append(r.followed, followed)
}

func (r *runner) playRound(ctx context.Context, ch world.Changes, creatorIndex map[string]int) (Metrics, error) {
	for _, u := range ch.NewUsers {
		r.addUser(u, creatorIndex)
	}
	if err := r.pol.beginRound(ctx, ch); err != nil {
		return Metrics{}, err
	}
	sessions := make([]*session, len(ch.Active))
	err := forEach(ctx, len(ch.Active), r.opts.Concurrency, func(ctx context.Context, i int) error {
		sessions[i] = r.serve(ctx, ch.Active[i], ch)
		return nil
	})
	if err != nil {
		return Metrics{}, err
	}
	var failed int
	var first error
	for _, s := range sessions {
		if s.err != nil {
			failed++
			if first == nil {
				first = s.err
			}
		}
	}
	if failed > 0 && failed*2 >= len(sessions) {
		return Metrics{}, fmt.Errorf("%d of %d feed requests failed, first: %w", failed, len(sessions), first)
	}
	if failed > 0 {
		fmt.Fprintf(r.opts.Progress, "warning: %s round %d: %d of %d feed requests failed, first: %v\n", r.pol.name(), ch.Round+1, failed, len(sessions), first)
	}
	if err := r.pol.endRound(ctx, ch, sessions); err != nil {
		return Metrics{}, err
	}
	if r.exp != nil {
		for _, s := range sessions {
			if err := r.exp.writeEvents(s.events); err != nil {
				return Metrics{}, err
			}
		}
	}
	return r.measure(sessions), nil
}

// gapBetweenVideos is the swipe between two views.
const gapBetweenVideos = time.Second

func (r *runner) serve(ctx context.Context, u *world.User, ch world.Changes) *session {
	s := &session{user: u, cold: u.JoinRound == ch.Round}
	rng := world.ResponseRNG(r.opts.Seed, u.Index, ch.Round)
	startAt := rng.Float64()
	rec, err := r.pol.recommend(ctx, u, r.seen[u.Index], ch.Round, r.opts.FeedCount)
	if err != nil {
		s.err = err
		return s
	}
	s.requestID, s.foreign = rec.requestID, rec.foreign
	seen, followed := r.seen[u.Index], r.followed[u.Index]
	for _, v := range rec.videos {
		// Drawn even for a repeat, so every slot consumes the same draws.
		resp := r.w.Respond(u, v, followed[v.Creator], rng)
		if _, again := seen[v.Index]; again {
			resp = world.SkipRepeat(v)
			s.repeats++
		} else if resp.Follow {
			followed[v.Creator] = true
		}
		seen[v.Index] = struct{}{}
		s.items = append(s.items, servedItem{v, resp})
	}

	// Lay the session out in the round's time: views back to back, starting
	// at a random moment, squeezed when they would not fit.
	var length time.Duration
	for _, it := range s.items {
		length += it.response.Watch() + gapBetweenVideos
	}
	window := ch.To.Sub(ch.From)
	scale := 1.0
	if length > window && length > 0 {
		scale = float64(window) / float64(length)
	}
	at := ch.From.Add(time.Duration(startAt * float64(max(0, window-time.Duration(float64(length)*scale)))))
	var report []event.Event
	for _, it := range s.items {
		end := at.Add(time.Duration(float64(it.response.Watch()) * scale))
		evs := it.response.Events(u.Meta.ID, it.video, s.requestID, end)
		report = append(report, evs...)
		if r.exp != nil {
			s.events = append(s.events, world.Impression(u.Meta.ID, it.video, s.requestID, at))
			s.events = append(s.events, evs...)
		}
		at = end.Add(time.Duration(float64(gapBetweenVideos) * scale))
	}
	if len(report) > 0 {
		s.postErr = r.pol.feedback(ctx, u, report)
	}
	return s
}

func (r *runner) measure(sessions []*session) Metrics {
	var t tally
	for _, s := range sessions {
		if s.err != nil {
			t.errors++
			continue
		}
		if s.postErr != nil {
			t.errors++
		}
		t.users++
		t.foreign += s.foreign
		t.repeats += s.repeats
		for _, it := range s.items {
			t.add(it, s.cold)
			for len(r.servedEver) <= it.video.Index {
				r.servedEver = append(r.servedEver, false)
			}
			if !r.servedEver[it.video.Index] {
				r.servedEver[it.video.Index] = true
				r.distinct++
			}
		}
	}
	r.total.merge(t)
	return t.metrics(r.coverage())
}

func (r *runner) coverage() float64 {
	if len(r.w.Videos) == 0 {
		return 0
	}
	return float64(r.distinct) / float64(len(r.w.Videos))
}

// forEach runs fn for 0..n-1 on up to conc goroutines and returns the first
// error, after which no new calls start.
func forEach(ctx context.Context, n, conc int, fn func(ctx context.Context, i int) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	next := make(chan int)
	var wg sync.WaitGroup
	for w := 0; w < min(conc, n); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if err := fn(ctx, i); err != nil {
					cancel(err)
				}
			}
		}()
	}
feed:
	for i := 0; i < n; i++ {
		select {
		case next <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	if err := context.Cause(ctx); err != nil {
		return err
	}
	return nil
}
