package sim

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"

	"reelfeed/catalog"
	"reelfeed/event"
	"reelfeed/sim/client"
)

// loader puts a world into a server through its public API, the way an
// app backend or `reelfeed import` would.
type loader struct {
	c    *client.Client
	conc int
	bar  *progressbar.ProgressBar // nil: no progress bar
}

// newBar draws a progress bar on w, or returns nil when w discards.
func newBar(w io.Writer, total int64, description string) *progressbar.ProgressBar {
	if w == nil || w == io.Discard || total <= 0 {
		return nil
	}
	return progressbar.NewOptions64(total,
		progressbar.OptionSetWriter(w),
		progressbar.OptionSetDescription(description),
		progressbar.OptionShowCount(),
		progressbar.OptionShowIts(),
		progressbar.OptionSetItsString("items"),
		progressbar.OptionThrottle(200*time.Millisecond),
		progressbar.OptionSetPredictTime(true),
		progressbar.OptionOnCompletion(func() { fmt.Fprintln(w) }),
	)
}

func (l *loader) advance(n int) {
	if l.bar != nil {
		_ = l.bar.Add(n)
	}
}

func (l *loader) finishBar() {
	if l.bar != nil {
		_ = l.bar.Finish()
	}
}

// upsertVideos posts videos in batches of client.MaxBatch.
func (l *loader) upsertVideos(ctx context.Context, videos []catalog.Video) error {
	batches := (len(videos) + client.MaxBatch - 1) / client.MaxBatch
	return forEach(ctx, batches, l.conc, func(ctx context.Context, b int) error {
		part := videos[b*client.MaxBatch : min(len(videos), (b+1)*client.MaxBatch)]
		if _, err := l.c.UpsertVideos(ctx, part); err != nil {
			return fmt.Errorf("uploading videos: %w", err)
		}
		l.advance(len(part))
		return nil
	})
}

// putUsers declares every user.
func (l *loader) putUsers(ctx context.Context, users []catalog.User) error {
	return forEach(ctx, len(users), l.conc, func(ctx context.Context, i int) error {
		if err := l.c.PutUser(ctx, users[i]); err != nil {
			return fmt.Errorf("declaring user %s: %w", users[i].ID, err)
		}
		l.advance(1)
		return nil
	})
}

// postEvents posts the events of users 0..n-1 (userEvents is called once
// per user, in order, from one goroutine), packed into full batches.
func (l *loader) postEvents(ctx context.Context, n int, userEvents func(i int) []event.Event) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	batches := make(chan []event.Event, l.conc)
	var wg sync.WaitGroup
	for w := 0; w < l.conc; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for b := range batches {
				if ctx.Err() != nil {
					continue // drain
				}
				if _, err := l.c.PostEvents(ctx, b); err != nil {
					cancel(fmt.Errorf("posting events: %w", err))
					continue
				}
				l.advance(len(b))
			}
		}()
	}
	cur := make([]event.Event, 0, client.MaxBatch)
	flush := func() {
		if len(cur) > 0 {
			select {
			case batches <- cur:
			case <-ctx.Done():
			}
			cur = make([]event.Event, 0, client.MaxBatch)
		}
	}
	for i := 0; i < n && ctx.Err() == nil; i++ {
		for _, ev := range userEvents(i) {
			if len(cur) == client.MaxBatch {
				flush()
			}
			cur = append(cur, ev)
		}
	}
	flush()
	close(batches)
	wg.Wait()
	return context.Cause(ctx)
}

// errBehind says the server did not catch up in time.
var errBehind = errors.New("server did not catch up in time")

// waitVideos polls until every id is in the server's catalog.
func waitVideos(ctx context.Context, c *client.Client, ids []string, conc int, timeout time.Duration) error {
	return poll(ctx, len(ids), conc, timeout, func(ctx context.Context, i int) (bool, string, error) {
		ok, err := c.VideoExists(ctx, ids[i])
		return ok, "video " + ids[i] + " not in the catalog", err
	})
}

// userWant is how many events (other than impressions) a user's profile
// must have applied.
type userWant struct {
	id   string
	want int64
}

// maxCatchUpChecks bounds the profiles polled to decide the server caught
// up: the users posted last (most likely still in flight) and an even
// spread of the rest.
const maxCatchUpChecks = 300

func sampleWants(all []userWant) []userWant {
	if len(all) <= maxCatchUpChecks {
		return all
	}
	const tail = maxCatchUpChecks / 3
	rest := all[:len(all)-tail]
	out := append([]userWant(nil), all[len(all)-tail:]...)
	step := float64(len(rest)) / float64(maxCatchUpChecks-tail)
	for k := 0; k < maxCatchUpChecks-tail; k++ {
		out = append(out, rest[int(float64(k)*step)])
	}
	return out
}

// waitApplied polls profiles until each user's applied counts reach what
// was posted for them.
func waitApplied(ctx context.Context, c *client.Client, wants []userWant, conc int, timeout time.Duration) error {
	return poll(ctx, len(wants), conc, timeout, func(ctx context.Context, i int) (bool, string, error) {
		counts, err := c.Counts(ctx, wants[i].id)
		if err != nil {
			return false, "", err
		}
		have := appliedCount(counts)
		return have >= wants[i].want, fmt.Sprintf("user %s has %d of %d events applied", wants[i].id, have, wants[i].want), nil
	})
}

// appliedCount sums a profile's counts except impressions, which the feed
// publishes on its own.
func appliedCount(counts map[string]int64) int64 {
	var n int64
	for t, c := range counts {
		if t != event.Impression.String() {
			n += c
		}
	}
	return n
}

// Polls of one item are spaced by a tenth of the time waited so far,
// within these bounds: fine resolution while catching up is quick, and
// well under the server's per-user rate limit (profile reads count against
// the user) when it is slow.
const (
	minPollInterval = 20 * time.Millisecond
	maxPollInterval = 250 * time.Millisecond
)

// poll calls check for every pending item until all report done, the
// timeout passes (errBehind, naming one laggard) or a request fails. A 429
// is not a failure: the item is asked again later.
func poll(ctx context.Context, n, conc int, timeout time.Duration, check func(ctx context.Context, i int) (done bool, why string, err error)) error {
	began := time.Now()
	deadline := began.Add(timeout)
	pending := make([]int, n)
	for i := range pending {
		pending[i] = i
	}
	for {
		var mu sync.Mutex
		var still []int
		var why string
		err := forEach(ctx, len(pending), conc, func(ctx context.Context, k int) error {
			done, w, err := check(ctx, pending[k])
			if client.StatusOf(err) == http.StatusTooManyRequests {
				done, w, err = false, err.Error(), nil
			}
			if err != nil {
				return err
			}
			if !done {
				mu.Lock()
				still = append(still, pending[k])
				why = w
				mu.Unlock()
			}
			return nil
		})
		if err != nil {
			return err
		}
		if len(still) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%w (%s; %d of %d checks pending after %s)", errBehind, why, len(still), n, timeout)
		}
		pending = still
		t := time.NewTimer(min(max(time.Since(began)/10, minPollInterval), maxPollInterval))
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

// jobRunner runs the server's background jobs on demand. A job the server
// does not know, or a token not allowed to run jobs, is reported once and
// then left alone: the jobs also run on the server's own timers.
type jobRunner struct {
	c     *client.Client
	names []string
	log   io.Writer
}

func (j *jobRunner) run(ctx context.Context) error {
	kept := j.names[:0:0]
	for _, name := range j.names {
		err := j.c.RunJob(ctx, name)
		switch status := client.StatusOf(err); {
		case err == nil:
			kept = append(kept, name)
		case ctx.Err() != nil:
			return ctx.Err()
		case status == http.StatusUnauthorized || status == http.StatusForbidden:
			fmt.Fprintf(j.log, "warning: the token may not run background jobs (%v); relying on the server's timers\n", err)
			j.names = nil
			return nil
		case status == http.StatusNotFound:
			fmt.Fprintf(j.log, "warning: the server has no job %q; not running it again\n", name)
		default:
			fmt.Fprintf(j.log, "warning: job %s failed: %v\n", name, err)
			kept = append(kept, name)
		}
	}
	j.names = kept
	return nil
}
