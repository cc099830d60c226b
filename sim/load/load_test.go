package load

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// sleepyServer answers every request after d, like a server with a fixed
// service time.
func sleepyServer(t *testing.T, d time.Duration) (*httptest.Server, func(ctx context.Context, i int) error) {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(d)
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(srv.Close)
	tr := &http.Transport{MaxIdleConnsPerHost: 512}
	t.Cleanup(tr.CloseIdleConnections)
	hc := &http.Client{Transport: tr}
	return srv, func(ctx context.Context, i int) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL, nil)
		if err != nil {
			return err
		}
		resp, err := hc.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNoContent {
			return errors.New(resp.Status)
		}
		return nil
	}
}

func TestOpenLoopHoldsItsRate(t *testing.T) {
	_, get := sleepyServer(t, 20*time.Millisecond)
	res, err := Run(context.Background(), Options{Rate: 200, Duration: time.Second}, get)
	if err != nil {
		t.Fatal(err)
	}
	if res.Requests != 200 || res.Errors != 0 {
		t.Fatalf("finished %d requests with %d errors, want 200 and 0", res.Requests, res.Errors)
	}
	// Sends kept to schedule; completions can lag a little on a busy machine.
	if res.MaxLag > 300*time.Millisecond {
		t.Fatalf("a request was sent %s late; the generator did not keep its rate", res.MaxLag)
	}
	if tp := res.Throughput(); tp < 125 || tp > 210 {
		t.Fatalf("throughput %.1f/s, want about 200/s", tp)
	}
	if p50 := res.Quantile(50); p50 < 20*time.Millisecond || p50 > 150*time.Millisecond {
		t.Fatalf("p50 %s, want about the 20ms service time", p50)
	}
}

// With only two requests in flight the server can do 100/s; offered 200/s,
// the backlog grows for the whole second. A closed-loop client would report
// ~20ms; measuring from the scheduled send time exposes the queueing.
func TestOpenLoopCountsQueueingInLatency(t *testing.T) {
	_, get := sleepyServer(t, 20*time.Millisecond)
	res, err := Run(context.Background(), Options{Rate: 200, Duration: time.Second, Concurrency: 2}, get)
	if err != nil {
		t.Fatal(err)
	}
	if res.Requests != 200 {
		t.Fatalf("finished %d requests, want all 200 scheduled", res.Requests)
	}
	if p99 := res.Quantile(99); p99 < 600*time.Millisecond {
		t.Fatalf("p99 %s hides the queue (service time 20ms, backlog ~1s)", p99)
	}
	if res.MaxLag < 500*time.Millisecond {
		t.Fatalf("max lag %s, want the scheduler to report it fell behind", res.MaxLag)
	}
	if res.Elapsed < 1800*time.Millisecond {
		t.Fatalf("elapsed %s: 200 requests at 100/s cannot finish in under 2s", res.Elapsed)
	}
}

func TestClosedLoopRunsTheRequestedCount(t *testing.T) {
	_, get := sleepyServer(t, 5*time.Millisecond)
	res, err := Run(context.Background(), Options{Requests: 60, Concurrency: 6}, get)
	if err != nil {
		t.Fatal(err)
	}
	if res.Requests != 60 || res.Errors != 0 {
		t.Fatalf("finished %d with %d errors, want 60 and 0", res.Requests, res.Errors)
	}
	// 60 requests, 6 at a time, 5ms each: about 50ms, far from the 300ms serially.
	if res.Elapsed > 250*time.Millisecond {
		t.Fatalf("elapsed %s: requests did not run concurrently", res.Elapsed)
	}
}

func TestErrorsAreCountedAndExplained(t *testing.T) {
	boom := errors.New("boom")
	res, err := Run(context.Background(), Options{Rate: 1000, Requests: 100}, func(ctx context.Context, i int) error {
		if i%4 == 0 {
			return boom
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Requests != 100 || res.Errors != 25 || !errors.Is(res.FirstError, boom) {
		t.Fatalf("requests %d errors %d first %v, want 100, 25, boom", res.Requests, res.Errors, res.FirstError)
	}
}

func TestCancelStopsPromptly(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Millisecond)
	defer cancel()
	began := time.Now()
	res, err := Run(ctx, Options{Rate: 100, Duration: time.Minute}, func(ctx context.Context, i int) error {
		<-ctx.Done() // a request that only ends with its context
		return ctx.Err()
	})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want the context's", err)
	}
	if took := time.Since(began); took > 2*time.Second {
		t.Fatalf("took %s to stop", took)
	}
	if res.Requests == 0 {
		t.Fatal("requests in flight at cancellation were not accounted for")
	}
}

func TestOptionsAreChecked(t *testing.T) {
	noop := func(context.Context, int) error { return nil }
	for _, o := range []Options{{}, {Rate: -1, Requests: 1}} {
		if _, err := Run(context.Background(), o, noop); err == nil {
			t.Errorf("options %+v accepted", o)
		}
	}
}
