package sim

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"runtime/pprof"
	"sync/atomic"
	"time"

	"reelfeed/catalog"
	"reelfeed/event"
	"reelfeed/sim/client"
	"reelfeed/sim/load"
	"reelfeed/sim/world"
)

// FeedOptions shape `reelfeed bench feed`. Zero values take the defaults.
type FeedOptions struct {
	Videos         int // catalog (default 10000)
	Users          int // users, each with a history (default 5000)
	HistoryPerUser int // mean videos each user was shown before (default 10)
	Count          int // videos per feed request (default 10)
	// Rate is feed requests per second, fixed, open loop (default 100).
	Rate float64
	// Duration is how long the rate is held (default 30s).
	Duration time.Duration
	// Warmup runs the same load first, unmeasured (default 3s; negative: none).
	Warmup time.Duration
	// Concurrency is how many requests build the world at once (default 8).
	Concurrency int
	// MaxInFlight caps feed requests in flight; a due request waits for a
	// slot and the wait counts in its latency (default 512).
	MaxInFlight int
	Seed        int64
	// Jobs run on the server after the world is built, so every recall
	// branch has data; nil means DefaultJobs, empty none.
	Jobs []string
	// Timeout bounds the wait for the server to apply the world (default 5m).
	Timeout time.Duration
	// Progress receives the progress bar and notes; nil discards.
	Progress io.Writer
	// AllowRemote permits a target that is not a loopback address.
	AllowRemote bool
	// Reuse drives a server that already holds this world (an earlier run
	// with the same sizes and seed): nothing is loaded and no job runs.
	Reuse bool
	// CPUProfile, when set, receives a CPU profile of this process during
	// the measured phase (with an embedded server: the server's work too).
	CPUProfile io.Writer
	// HeapProfile, when set, receives a heap profile (live objects after a
	// collection) taken when the measured phase ends.
	HeapProfile io.Writer
}

// FeedResult is what `bench feed --json` prints. Latencies run from each
// request's scheduled send time, so a stalled server shows as queueing
// rather than as a lower request rate.
type FeedResult struct {
	RPS       float64 `json:"rps"` // requests finished per second
	P50Ms     float64 `json:"p50_ms"`
	P99Ms     float64 `json:"p99_ms"`
	Errors    int64   `json:"errors"` // transport errors and non-2xx
	TargetRPS float64 `json:"target_rps"`
	Requests  int64   `json:"requests"`
	P999Ms    float64 `json:"p999_ms"`
	MaxMs     float64 `json:"max_ms"`
	Empty     int64   `json:"empty"` // 200s with no items
	// FirstError says why requests failed, when they did.
	FirstError string `json:"first_error,omitempty"`
}

func (o FeedOptions) withDefaults() FeedOptions {
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	def(&o.Videos, 10000)
	def(&o.Users, 5000)
	def(&o.HistoryPerUser, 10)
	def(&o.Count, 10)
	def(&o.Concurrency, 8)
	def(&o.MaxInFlight, 512)
	if o.Rate == 0 {
		o.Rate = 100
	}
	if o.Duration == 0 {
		o.Duration = 30 * time.Second
	}
	if o.Warmup == 0 {
		o.Warmup = 3 * time.Second
	}
	if o.Jobs == nil {
		o.Jobs = DefaultJobs()
	}
	if o.Timeout == 0 {
		o.Timeout = 5 * time.Minute
	}
	if o.Progress == nil {
		o.Progress = io.Discard
	}
	return o
}

// streamBenchFeed labels the feed benchmark's draws (see world.RNG).
const streamBenchFeed uint64 = 103

// BenchFeed builds a world of opts.Videos videos and opts.Users users with
// history through the API, waits until the server has applied it, runs the
// background jobs, then drives GET /v1/feed for random users at a fixed
// rate and reports latency percentiles and errors.
func BenchFeed(ctx context.Context, target Target, opts FeedOptions) (FeedResult, error) {
	o := opts.withDefaults()
	switch {
	case o.Videos < 1 || o.Users < 1 || o.HistoryPerUser < 0 || o.Concurrency < 1 || o.MaxInFlight < 1:
		return FeedResult{}, errors.New("sim: videos, users, concurrency and max in flight must be >= 1")
	case o.Count < 1 || o.Count > 50:
		return FeedResult{}, fmt.Errorf("sim: count %d: must be 1..50", o.Count)
	case o.Rate < 0 || o.Duration < 0:
		return FeedResult{}, errors.New("sim: rate and duration must be positive")
	}
	if err := checkLoopback(target.BaseURL, o.AllowRemote); err != nil {
		return FeedResult{}, err
	}
	setup, err := client.New(target.BaseURL, target.Token, client.WithRetries(5))
	if err != nil {
		return FeedResult{}, err
	}
	measured, err := client.New(target.BaseURL, target.Token)
	if err != nil {
		return FeedResult{}, err
	}
	w, err := world.Generate(world.Config{
		Seed: o.Seed, Users: o.Users, Videos: o.Videos, HistoryPerUser: o.HistoryPerUser, Start: time.Now(),
	})
	if err != nil {
		return FeedResult{}, err
	}
	if !o.Reuse {
		if err := buildWorld(ctx, setup, w, o); err != nil {
			return FeedResult{}, err
		}
	}

	// Keep only what the requests need and let the rest of the world go:
	// with an embedded server this process's heap is the server's, and the
	// collector should not be marking the generator's bookkeeping while
	// latencies are measured. One collection now starts the warm-up clean.
	queries := make([]client.FeedQuery, len(w.Users))
	for i, u := range w.Users {
		queries[i] = client.FeedQuery{UserID: u.Meta.ID, Count: o.Count, Region: u.Meta.Region, Device: u.Meta.Device}
	}
	w = nil
	runtime.GC()

	var empty atomic.Int64
	request := func(ctx context.Context, i int) error {
		q := queries[world.RNG(o.Seed, streamBenchFeed, uint64(i)).IntN(len(queries))]
		n, err := measured.FeedLen(ctx, q)
		if err == nil && n == 0 {
			empty.Add(1)
		}
		return err
	}
	lo := load.Options{Rate: o.Rate, Concurrency: o.MaxInFlight, Timeout: 10 * time.Second}
	if o.Warmup > 0 {
		fmt.Fprintf(o.Progress, "warming up for %s at %.0f requests/s...\n", o.Warmup, o.Rate)
		lo.Duration = o.Warmup
		if _, err := load.Run(ctx, lo, func(ctx context.Context, i int) error { return request(ctx, -1-i) }); err != nil {
			return FeedResult{}, err
		}
		empty.Store(0)
	}
	fmt.Fprintf(o.Progress, "measuring for %s at %.0f requests/s...\n", o.Duration, o.Rate)
	lo.Duration = o.Duration
	if o.CPUProfile != nil {
		if err := pprof.StartCPUProfile(o.CPUProfile); err != nil {
			return FeedResult{}, err
		}
	}
	res, err := load.Run(ctx, lo, request)
	if o.CPUProfile != nil {
		pprof.StopCPUProfile()
	}
	if err != nil {
		return FeedResult{}, err
	}
	if o.HeapProfile != nil {
		runtime.GC()
		if err := pprof.Lookup("heap").WriteTo(o.HeapProfile, 0); err != nil {
			return FeedResult{}, err
		}
	}
	if res.MaxLag > time.Second {
		fmt.Fprintf(o.Progress, "warning: requests were sent up to %s late (in-flight cap of %d reached); latencies include that wait\n", res.MaxLag.Round(time.Millisecond), o.MaxInFlight)
	}
	out := FeedResult{
		RPS:       res.Throughput(),
		P50Ms:     ms(res.Quantile(50)),
		P99Ms:     ms(res.Quantile(99)),
		P999Ms:    ms(res.Quantile(99.9)),
		Errors:    res.Errors,
		TargetRPS: o.Rate,
		Requests:  res.Requests,
		Empty:     empty.Load(),
	}
	if res.Latency.TotalCount() > 0 {
		out.MaxMs = float64(res.Latency.Max()) / 1000
	}
	if res.FirstError != nil {
		out.FirstError = res.FirstError.Error()
	}
	return out, nil
}

// buildWorld loads videos, users and their histories, waits until the
// server applied them and runs the background jobs.
func buildWorld(ctx context.Context, c *client.Client, w *world.World, o FeedOptions) error {
	videos := make([]catalog.Video, len(w.Videos))
	for i, v := range w.Videos {
		videos[i] = v.Meta
	}
	users := make([]catalog.User, len(w.Users))
	wants := make([]userWant, len(w.Users))
	var total int64
	for i, u := range w.Users {
		users[i] = u.Meta
		wants[i].id = u.Meta.ID
		for _, x := range w.History(u) {
			evs := x.Events(u.Meta.ID)
			total += int64(len(evs))
			wants[i].want += int64(len(evs) - 1) // all but the impression
		}
	}
	fmt.Fprintf(o.Progress, "building the world: %d videos, %d users, %d events\n", len(videos), len(users), total)
	l := &loader{c: c, conc: o.Concurrency, bar: newBar(o.Progress, int64(len(videos)+len(users))+total, "building the world")}
	defer l.finishBar()
	if err := l.upsertVideos(ctx, videos); err != nil {
		return err
	}
	if err := l.putUsers(ctx, users); err != nil {
		return err
	}
	var lastIDs []string
	for i := client.MaxBatch - 1; i < len(videos); i += client.MaxBatch {
		lastIDs = append(lastIDs, videos[i].ID)
	}
	lastIDs = append(lastIDs, videos[len(videos)-1].ID)
	if err := waitVideos(ctx, c, lastIDs, o.Concurrency, o.Timeout); err != nil {
		return err
	}
	err := l.postEvents(ctx, len(w.Users), func(i int) []event.Event {
		var evs []event.Event
		for _, x := range w.History(w.Users[i]) {
			evs = append(evs, x.Events(w.Users[i].Meta.ID)...)
		}
		return evs
	})
	if err != nil {
		return err
	}
	l.finishBar()
	fmt.Fprintln(o.Progress, "waiting for the server to apply the history...")
	if err := waitApplied(ctx, c, sampleWants(wants), o.Concurrency, o.Timeout); err != nil {
		return err
	}
	if len(o.Jobs) > 0 {
		fmt.Fprintf(o.Progress, "running background jobs %v...\n", o.Jobs)
		return (&jobRunner{c: c, names: append([]string(nil), o.Jobs...), log: o.Progress}).run(ctx)
	}
	return nil
}
