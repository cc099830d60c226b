// Package load drives a request function at a fixed rate, open loop, the way
// real clients arrive: request i is due at start + i/rate whether or not
// earlier requests have finished, and its latency is measured from that due
// time. A server that stalls therefore shows up as queueing in the
// percentiles instead of silently lowering the offered rate (coordinated
// omission). A closed-loop mode (rate 0) runs as fast as a fixed number of
// workers allows, for throughput tests.
package load

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// Func sends request i. A non-nil error counts the request as failed.
type Func func(ctx context.Context, i int) error

// Options shape a run. At least one of Duration and Requests must be set.
type Options struct {
	// Rate is requests per second; 0 runs closed loop (Concurrency workers
	// back to back).
	Rate float64
	// Duration is how long requests are scheduled (open loop) or started
	// (closed loop); 0: until Requests.
	Duration time.Duration
	// Requests stops after this many; 0: until Duration.
	Requests int
	// Concurrency caps requests in flight. Open loop: a due request waits
	// for a free slot and that wait counts in its latency (default 1024).
	// Closed loop: the number of workers (default 8).
	Concurrency int
	// Timeout bounds each request (default 10s).
	Timeout time.Duration
}

// Result is what a run measured.
type Result struct {
	Requests int64 // finished, successfully or not
	Errors   int64
	// FirstError is the first failure, to say why errors happened.
	FirstError error
	// Elapsed runs from the first due time to the last completion.
	Elapsed time.Duration
	// MaxLag is how late the scheduler issued a request at worst (open
	// loop): large values mean the client, not the server, was saturated
	// or the in-flight cap was reached.
	MaxLag time.Duration
	// Latency holds microseconds from due time (open loop) or send time
	// (closed loop) to completion, for every finished request.
	Latency *hdrhistogram.Histogram
}

// Throughput is finished requests per second.
func (r Result) Throughput() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Requests) / r.Elapsed.Seconds()
}

// Quantile returns the latency at q in [0,100] percent.
func (r Result) Quantile(q float64) time.Duration {
	if r.Latency == nil || r.Latency.TotalCount() == 0 {
		return 0
	}
	return time.Duration(r.Latency.ValueAtQuantile(q)) * time.Microsecond
}

const maxTrackable = time.Hour

// NewHistogram returns a latency histogram in microseconds, 1 µs to 1 h,
// three significant digits.
func NewHistogram() *hdrhistogram.Histogram {
	return hdrhistogram.New(1, maxTrackable.Microseconds(), 3)
}

type recorder struct {
	mu    sync.Mutex
	h     *hdrhistogram.Histogram
	n     int64
	errs  int64
	first error
	last  time.Time
}

func (r *recorder) record(lat time.Duration, done time.Time, err error) {
	us := min(max(lat.Microseconds(), 1), maxTrackable.Microseconds())
	r.mu.Lock()
	defer r.mu.Unlock()
	_ = r.h.RecordValue(us) // in range by construction
	r.n++
	if err != nil {
		r.errs++
		if r.first == nil {
			r.first = err
		}
	}
	if done.After(r.last) {
		r.last = done
	}
}

// Run drives fn until Duration or Requests is reached, then waits for every
// request in flight. When ctx ends early it stops scheduling, waits for the
// requests in flight (their contexts end too) and returns what it measured
// with ctx's error.
func Run(ctx context.Context, o Options, fn Func) (Result, error) {
	if o.Duration <= 0 && o.Requests <= 0 {
		return Result{}, errors.New("load: set a duration or a request count")
	}
	if o.Rate < 0 {
		return Result{}, errors.New("load: negative rate")
	}
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Second
	}
	rec := &recorder{h: NewHistogram()}
	var start time.Time
	var lag time.Duration
	if o.Rate > 0 {
		if o.Concurrency <= 0 {
			o.Concurrency = 1024
		}
		start, lag = openLoop(ctx, o, fn, rec)
	} else {
		if o.Concurrency <= 0 {
			o.Concurrency = 8
		}
		start = closedLoop(ctx, o, fn, rec)
	}
	res := Result{Requests: rec.n, Errors: rec.errs, FirstError: rec.first, MaxLag: lag, Latency: rec.h}
	if rec.n > 0 {
		res.Elapsed = rec.last.Sub(start)
	}
	return res, ctx.Err()
}

func openLoop(ctx context.Context, o Options, fn Func, rec *recorder) (time.Time, time.Duration) {
	slots := make(chan struct{}, o.Concurrency)
	var wg sync.WaitGroup
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	start := time.Now()
	var maxLag time.Duration
	for i := 0; o.Requests <= 0 || i < o.Requests; i++ {
		// Due times come from the start, not the previous send, so a late
		// send is followed by catch-up sends and the offered rate holds.
		offset := time.Duration(float64(i) / o.Rate * float64(time.Second))
		if o.Duration > 0 && offset >= o.Duration {
			break
		}
		due := start.Add(offset)
		if d := time.Until(due); d > 0 {
			timer.Reset(d)
			select {
			case <-timer.C:
			case <-ctx.Done():
				wg.Wait()
				return start, maxLag
			}
		}
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			wg.Wait()
			return start, maxLag
		}
		if l := time.Since(due); l > maxLag {
			maxLag = l
		}
		wg.Add(1)
		go func(i int, due time.Time) {
			defer wg.Done()
			defer func() { <-slots }()
			err := call(ctx, o.Timeout, fn, i)
			now := time.Now()
			rec.record(now.Sub(due), now, err)
		}(i, due)
	}
	wg.Wait()
	return start, maxLag
}

func closedLoop(ctx context.Context, o Options, fn Func, rec *recorder) time.Time {
	var next atomic.Int64
	start := time.Now()
	var wg sync.WaitGroup
	for w := 0; w < o.Concurrency; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if o.Requests > 0 && i >= o.Requests {
					return
				}
				sent := time.Now()
				if o.Duration > 0 && sent.Sub(start) >= o.Duration {
					return
				}
				err := call(ctx, o.Timeout, fn, i)
				now := time.Now()
				rec.record(now.Sub(sent), now, err)
			}
		}()
	}
	wg.Wait()
	return start
}

func call(ctx context.Context, timeout time.Duration, fn Func, i int) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	return fn(ctx, i)
}
