package sim

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	"github.com/google/uuid"

	"reelfeed/catalog"
	"reelfeed/event"
	"reelfeed/sim/client"
	"reelfeed/sim/load"
	"reelfeed/sim/world"
)

// IngestOptions shape `reelfeed bench ingest`. Zero values take the defaults.
type IngestOptions struct {
	Events      int     // events to post (default 100000)
	Batch       int     // events per POST, 1..1000 (default 500)
	Concurrency int     // POSTs in flight (default 8)
	Users       int     // distinct users the events are about (default 1000)
	Videos      int     // catalog uploaded first, so events get enriched (default 1000)
	Probes      int     // events whose visibility is timed (default 100)
	Rate        float64 // events/s offered, open loop; 0: as fast as the server accepts
	Seed        int64
	// Timeout bounds the wait for every event to be applied (default 2m).
	Timeout time.Duration
	// Progress receives the setup progress bar and notes; nil discards.
	Progress io.Writer
	// AllowRemote permits a target that is not a loopback address.
	AllowRemote bool
}

// IngestResult is what `bench ingest --json` prints. Throughput is end to
// end: from the first POST until every event is reflected in the profiles.
// Visibility is timed per probe event from the start of the POST that
// carried it until its profile shows it.
type IngestResult struct {
	EventsPerS   float64 `json:"events_per_s"`
	P50VisibleMs float64 `json:"p50_visible_ms"`
	P99VisibleMs float64 `json:"p99_visible_ms"`
	Events       int64   `json:"events"`         // accepted
	AcceptedPerS float64 `json:"accepted_per_s"` // 202s alone, not waiting for application
	PostP99Ms    float64 `json:"post_p99_ms"`    // one batch POST, from its due time
	Errors       int64   `json:"errors"`         // failed POSTs
	Probes       int     `json:"probes"`         // probes timed
	ProbesLost   int     `json:"probes_lost"`    // probes never seen applied before Timeout
}

func (o IngestOptions) withDefaults() IngestOptions {
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	def(&o.Events, 100000)
	def(&o.Batch, 500)
	def(&o.Concurrency, 8)
	def(&o.Users, 1000)
	def(&o.Videos, 1000)
	def(&o.Probes, 100)
	if o.Timeout == 0 {
		o.Timeout = 2 * time.Minute
	}
	if o.Progress == nil {
		o.Progress = io.Discard
	}
	return o
}

// streamBenchIngest labels the ingest benchmark's draws (see world.RNG).
const streamBenchIngest uint64 = 102

// benchTypes is the mix of reported events an app sends (impressions are
// the feed's own).
var benchTypes = [...]struct {
	t     event.Type
	share float64
}{
	{event.Play, 0.45}, {event.Skip, 0.25}, {event.Complete, 0.15}, {event.Like, 0.08},
	{event.Comment, 0.03}, {event.Share, 0.02}, {event.Follow, 0.02},
}

// BenchIngest uploads a small catalog, then posts opts.Events events in
// batches on opts.Concurrency connections and measures end-to-end
// throughput and visibility latency. Probe events go to users that receive
// nothing else, so the first count that appears in a probe's profile is
// that event.
func BenchIngest(ctx context.Context, target Target, opts IngestOptions) (IngestResult, error) {
	o := opts.withDefaults()
	switch {
	case o.Events < 1 || o.Users < 1 || o.Videos < 1 || o.Concurrency < 1 || o.Probes < 0:
		return IngestResult{}, errors.New("sim: events, users, videos and concurrency must be >= 1")
	case o.Batch < 1 || o.Batch > client.MaxBatch:
		return IngestResult{}, fmt.Errorf("sim: batch %d: must be 1..%d", o.Batch, client.MaxBatch)
	case o.Rate < 0:
		return IngestResult{}, errors.New("sim: rate must be >= 0")
	}
	if err := checkLoopback(target.BaseURL, o.AllowRemote); err != nil {
		return IngestResult{}, err
	}
	setup, err := client.New(target.BaseURL, target.Token, client.WithRetries(5))
	if err != nil {
		return IngestResult{}, err
	}
	measured, err := client.New(target.BaseURL, target.Token)
	if err != nil {
		return IngestResult{}, err
	}

	w, err := world.Generate(world.Config{Seed: o.Seed, Videos: o.Videos, Start: time.Now()})
	if err != nil {
		return IngestResult{}, err
	}
	videos := make([]catalog.Video, len(w.Videos))
	for i, v := range w.Videos {
		videos[i] = v.Meta
	}
	l := &loader{c: setup, conc: o.Concurrency, bar: newBar(o.Progress, int64(len(videos)), "uploading the catalog")}
	if err := l.upsertVideos(ctx, videos); err != nil {
		return IngestResult{}, err
	}
	l.finishBar()
	if err := waitVideos(ctx, setup, []string{videos[len(videos)-1].ID}, o.Concurrency, o.Timeout); err != nil {
		return IngestResult{}, err
	}

	run := &ingestRun{
		o: o, c: measured, videos: videos,
		prefix:      "bench-" + uuid.NewString()[:8],
		acceptedFor: make([]atomic.Int64, o.Users),
		visible:     load.NewHistogram(),
		batches:     (o.Events + o.Batch - 1) / o.Batch,
		probeFor:    map[int]int{},
	}
	for k := 0; k < min(o.Probes, run.batches); k++ {
		run.probeFor[k*run.batches/min(o.Probes, run.batches)] = k
	}
	fmt.Fprintf(o.Progress, "posting %d events in batches of %d (%d probes)...\n", o.Events, o.Batch, len(run.probeFor))
	return run.measure(ctx)
}

type ingestRun struct {
	o        IngestOptions
	c        *client.Client
	videos   []catalog.Video
	prefix   string // makes users and event ids unique to this run
	batches  int
	probeFor map[int]int // batch → probe carried in its first slot

	acceptedFor []atomic.Int64 // per bulk user, events accepted
	accepted    atomic.Int64

	// runCtx outlives each POST's own context, for the probe watchers a
	// POST starts.
	runCtx context.Context

	mu      sync.Mutex
	visible *hdrhistogram.Histogram
	lost    int
	probes  sync.WaitGroup
}

func (r *ingestRun) userID(i int) string  { return fmt.Sprintf("%s-u%06d", r.prefix, i) }
func (r *ingestRun) probeID(k int) string { return fmt.Sprintf("%s-p%05d", r.prefix, k) }

func (r *ingestRun) measure(ctx context.Context) (IngestResult, error) {
	lo := load.Options{Requests: r.batches, Concurrency: r.o.Concurrency, Timeout: 30 * time.Second}
	if r.o.Rate > 0 {
		lo.Rate = r.o.Rate / float64(r.o.Batch)
	}
	r.runCtx = ctx
	start := time.Now()
	posted, err := load.Run(ctx, lo, r.postBatch)
	if err != nil {
		return IngestResult{}, err
	}
	acceptedAt := time.Now()
	appliedAt, err := r.waitApplied(ctx)
	r.probes.Wait()
	if err != nil {
		return IngestResult{}, err
	}
	if posted.Errors > 0 {
		fmt.Fprintf(r.o.Progress, "warning: %d of %d batches failed, first: %v\n", posted.Errors, r.batches, posted.FirstError)
	}
	n := r.accepted.Load()
	res := IngestResult{
		Events:     n,
		Errors:     posted.Errors,
		PostP99Ms:  ms(posted.Quantile(99)),
		Probes:     int(r.visible.TotalCount()),
		ProbesLost: r.lost,
	}
	if d := appliedAt.Sub(start); d > 0 {
		res.EventsPerS = float64(n) / d.Seconds()
	}
	if d := acceptedAt.Sub(start); d > 0 {
		res.AcceptedPerS = float64(n) / d.Seconds()
	}
	if res.Probes > 0 {
		res.P50VisibleMs = float64(r.visible.ValueAtQuantile(50)) / 1000
		res.P99VisibleMs = float64(r.visible.ValueAtQuantile(99)) / 1000
	}
	return res, nil
}

func (r *ingestRun) postBatch(ctx context.Context, b int) error {
	rng := world.RNG(r.o.Seed, streamBenchIngest, uint64(b))
	size := min(r.o.Batch, r.o.Events-b*r.o.Batch)
	now := time.Now().UTC()
	evs := make([]event.Event, size)
	users := make([]int, size)
	probe, hasProbe := r.probeFor[b]
	for j := range evs {
		ev := &evs[j]
		ev.ID = fmt.Sprintf("%s-e%09d", r.prefix, b*r.o.Batch+j)
		ev.VideoID = r.videos[rng.IntN(len(r.videos))].ID
		ev.TS = now.Add(-time.Duration(rng.IntN(60_000)) * time.Millisecond).Truncate(time.Millisecond)
		ev.Type = pickType(rng.Float64())
		if ev.Type != event.Follow {
			ev.WatchMs = 500 + int64(rng.IntN(30_000))
		}
		users[j] = rng.IntN(r.o.Users)
		ev.UserID = r.userID(users[j])
		if j == 0 && hasProbe {
			users[j] = -1
			ev.UserID = r.probeID(probe)
		}
	}
	sent := time.Now()
	if _, err := r.c.PostEvents(ctx, evs); err != nil {
		if hasProbe {
			r.mu.Lock()
			r.lost++
			r.mu.Unlock()
		}
		return err
	}
	for _, u := range users {
		if u >= 0 {
			r.acceptedFor[u].Add(1)
		}
	}
	r.accepted.Add(int64(size))
	if hasProbe {
		r.probes.Add(1)
		go r.watchProbe(r.runCtx, r.probeID(probe), sent)
	}
	return nil
}

func pickType(x float64) event.Type {
	for _, bt := range benchTypes {
		if x < bt.share {
			return bt.t
		}
		x -= bt.share
	}
	return event.Play
}

// A probe's profile is read again after a tenth of the time it has waited
// so far, within these bounds: about 10% resolution, without slow
// visibility turning the probes into a flood of reads that would distort
// the very ingestion being measured.
const (
	minProbeInterval = 2 * time.Millisecond
	maxProbeInterval = 50 * time.Millisecond
)

func (r *ingestRun) watchProbe(ctx context.Context, userID string, sent time.Time) {
	defer r.probes.Done()
	ctx, cancel := context.WithTimeout(ctx, r.o.Timeout)
	defer cancel()
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			r.mu.Lock()
			r.lost++
			r.mu.Unlock()
			return
		case <-t.C:
		}
		counts, err := r.c.Counts(ctx, userID)
		if err == nil && appliedCount(counts) >= 1 {
			lat := time.Since(sent)
			r.mu.Lock()
			_ = r.visible.RecordValue(max(lat.Microseconds(), 1))
			r.mu.Unlock()
			return
		}
		t.Reset(min(max(time.Since(sent)/10, minProbeInterval), maxProbeInterval))
	}
}

// waitApplied polls every bulk user until their profile shows every event
// accepted for them, and returns when the last one was first seen complete.
func (r *ingestRun) waitApplied(ctx context.Context) (time.Time, error) {
	var wants []userWant
	for i := range r.acceptedFor {
		if n := r.acceptedFor[i].Load(); n > 0 {
			wants = append(wants, userWant{r.userID(i), n})
		}
	}
	var mu sync.Mutex
	var last time.Time
	err := poll(ctx, len(wants), r.o.Concurrency, r.o.Timeout, func(ctx context.Context, i int) (bool, string, error) {
		counts, err := r.c.Counts(ctx, wants[i].id)
		if err != nil {
			return false, "", err
		}
		have := appliedCount(counts)
		if have < wants[i].want {
			return false, fmt.Sprintf("user %s has %d of %d events applied", wants[i].id, have, wants[i].want), nil
		}
		now := time.Now()
		mu.Lock()
		if now.After(last) {
			last = now
		}
		mu.Unlock()
		return true, "", nil
	})
	return last, err
}
