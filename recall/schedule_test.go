package recall

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"reelfeed/event"
)

// countingJob records its runs and can fail or block on demand.
type countingJob struct {
	runs atomic.Int32
	fail atomic.Bool
	ran  chan struct{}
}

func newCountingJob() *countingJob { return &countingJob{ran: make(chan struct{}, 100)} }

func (j *countingJob) Name() string { return "counting" }

func (j *countingJob) Run(ctx context.Context) (JobResult, error) {
	j.runs.Add(1)
	j.ran <- struct{}{}
	if j.fail.Load() {
		return JobResult{}, errors.New("boom")
	}
	return JobResult{Job: "counting"}, nil
}

func waitRun(t *testing.T, j *countingJob, what string) {
	t.Helper()
	select {
	case <-j.ran:
	case <-time.After(5 * time.Second):
		t.Fatalf("no run %s", what)
	}
}

func noRun(t *testing.T, j *countingJob, what string) {
	t.Helper()
	select {
	case <-j.ran:
		t.Fatalf("unexpected run %s", what)
	case <-time.After(50 * time.Millisecond):
	}
}

func TestRunEveryRunsAtStartOnTriggerAndUntilCancelled(t *testing.T) {
	job := newCountingJob()
	trigger := make(chan struct{}, 1)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		RunEvery(ctx, time.Hour, job, nil, trigger)
		close(done)
	}()
	waitRun(t, job, "at start")
	noRun(t, job, "before the interval or a trigger")
	trigger <- struct{}{}
	waitRun(t, job, "on trigger")
	job.fail.Store(true)
	trigger <- struct{}{}
	waitRun(t, job, "on a trigger that fails")
	trigger <- struct{}{}
	waitRun(t, job, "after a failed run")
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("RunEvery did not return after ctx ended")
	}
}

func TestRunEveryTimerAndMergedTriggers(t *testing.T) {
	job := newCountingJob()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go RunEvery(ctx, 20*time.Millisecond, job, nil)
	for i := range 3 {
		waitRun(t, job, "on the timer "+string(rune('0'+i)))
	}

	timerless := newCountingJob()
	a, b := make(chan struct{}), make(chan struct{})
	go RunEvery(ctx, 0, timerless, nil, a, b)
	noRun(t, timerless, "at start with the timer disabled")
	a <- struct{}{}
	waitRun(t, timerless, "on the first trigger")
	b <- struct{}{}
	waitRun(t, timerless, "on the second trigger")
}

func TestJobRunsNeverOverlap(t *testing.T) {
	r := newJobRunner("overlap", nil, nil)
	var inFlight, most atomic.Int32
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			_, _ = r.run(context.Background(), func(ctx context.Context, res *JobResult) error {
				n := inFlight.Add(1)
				if n > most.Load() {
					most.Store(n)
				}
				time.Sleep(5 * time.Millisecond)
				inFlight.Add(-1)
				return nil
			})
		})
	}
	wg.Wait()
	if most.Load() != 1 {
		t.Errorf("%d runs overlapped", most.Load())
	}

	// A caller waiting for a run in flight gives up when its ctx ends.
	release := make(chan struct{})
	started := make(chan struct{})
	go r.run(context.Background(), func(ctx context.Context, res *JobResult) error {
		close(started)
		<-release
		return nil
	})
	<-started
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := r.run(ctx, func(context.Context, *JobResult) error { return nil }); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("waiting run = %v, want context.DeadlineExceeded", err)
	}
	close(release)
}

func TestJobMetricsAndResult(t *testing.T) {
	reg := prometheus.NewRegistry()
	store := NewMemoryListStore()
	i2i := jobsMust(NewI2IJob(DefaultI2IConfig(), coEngagementLog(), store, nil, reg))
	i2i.now = func() time.Time { return jobsNow }
	cf := jobsMust(NewUserCFJob(DefaultUserCFConfig(), &jobsEventLog{}, store, nil, reg))
	// The same job built twice against one registry (a config reload) must
	// not panic on registration.
	_ = jobsMust(NewI2IJob(DefaultI2IConfig(), coEngagementLog(), store, nil, reg))

	res := mustRun(t, i2i)
	mustRun(t, cf)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := i2i.Run(ctx); err == nil {
		t.Fatal("run with a cancelled ctx succeeded")
	}

	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]*dto.MetricFamily{}
	for _, f := range families {
		byName[f.GetName()] = f
	}
	value := func(family string, labels map[string]string) (float64, bool) {
		f := byName[family]
		if f == nil {
			return 0, false
		}
	metrics:
		for _, m := range f.GetMetric() {
			for _, lp := range m.GetLabel() {
				if want, ok := labels[lp.GetName()]; ok && want != lp.GetValue() {
					continue metrics
				}
			}
			switch {
			case m.Gauge != nil:
				return m.GetGauge().GetValue(), true
			case m.Counter != nil:
				return m.GetCounter().GetValue(), true
			case m.Histogram != nil:
				return float64(m.GetHistogram().GetSampleCount()), true
			}
		}
		return 0, false
	}
	for _, job := range []string{"i2i", "usercf"} {
		if n, ok := value("reelfeed_recall_job_duration_seconds", map[string]string{"job": job}); !ok || n < 1 {
			t.Errorf("%s: duration samples = %v (found %v)", job, n, ok)
		}
		if ts, ok := value("reelfeed_recall_job_last_success_timestamp_seconds", map[string]string{"job": job}); !ok || time.Since(time.Unix(int64(ts), 0)) > time.Minute {
			t.Errorf("%s: last success = %v (found %v)", job, ts, ok)
		}
	}
	if n, _ := value("reelfeed_recall_job_runs_total", map[string]string{"job": "i2i", "outcome": "success"}); n != 1 {
		t.Errorf("i2i successes = %v, want 1", n)
	}
	if n, _ := value("reelfeed_recall_job_runs_total", map[string]string{"job": "i2i", "outcome": "error"}); n != 0 {
		t.Errorf("i2i errors = %v, want 0: a caller giving up before its run started is not a failed run", n)
	}

	raw, err := json.Marshal(res)
	if err != nil {
		t.Fatal(err)
	}
	var fields map[string]any
	if err := json.Unmarshal(raw, &fields); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"job", "started_at", "duration_ms", "events", "users", "videos", "pairs", "lists", "items"} {
		if _, ok := fields[k]; !ok {
			t.Errorf("result JSON %s lacks %q", raw, k)
		}
	}
	if fields["job"] != "i2i" {
		t.Errorf("result job = %v", fields["job"])
	}
}

func TestConfigsRejectSettingsThatCannotWork(t *testing.T) {
	hot := func(f func(*HotConfig)) error {
		c := DefaultHotConfig()
		f(&c)
		_, err := NewHotJob(c, nil, nil, NewMemoryListStore(), nil, nil)
		return err
	}
	i2i := func(f func(*I2IConfig)) error {
		c := DefaultI2IConfig()
		f(&c)
		_, err := NewI2IJob(c, &jobsEventLog{}, NewMemoryListStore(), nil, nil)
		if _, srcErr := NewI2ISource(c, NewMemoryListStore(), nil); (srcErr == nil) != (err == nil) {
			t.Errorf("job and source disagree on %+v: %v vs %v", c, err, srcErr)
		}
		return err
	}
	cf := func(f func(*UserCFConfig)) error {
		c := DefaultUserCFConfig()
		f(&c)
		_, err := NewUserCFJob(c, &jobsEventLog{}, NewMemoryListStore(), nil, nil)
		return err
	}
	spike := func(f func(*SpikeConfig)) error {
		c := DefaultSpikeConfig()
		f(&c)
		_, err := NewSpikeDetector(c, nil, nil)
		return err
	}
	tests := []struct {
		name    string
		err     error
		wantErr bool
	}{
		{"hot defaults", hot(func(*HotConfig) {}), false},
		{"hot empty list", hot(func(c *HotConfig) { c.ListSize = 0 }), true},
		{"hot no weights", hot(func(c *HotConfig) { c.Weights = [event.NumTypes]float64{} }), true},
		{"hot floor above 1", hot(func(c *HotConfig) { c.FreshnessFloor = 1.5 }), true},
		{"i2i defaults", i2i(func(*I2IConfig) {}), false},
		{"i2i no session bound", i2i(func(c *I2IConfig) { c.SessionGap = 0 }), false},
		{"i2i no window", i2i(func(c *I2IConfig) { c.Window = 0 }), true},
		{"i2i no neighbours", i2i(func(c *I2IConfig) { c.TopK = 0 }), true},
		{"i2i penalty above 1", i2i(func(c *I2IConfig) { c.PopularityPenalty = 2 }), true},
		{"i2i no seeds", i2i(func(c *I2IConfig) { c.Seeds = 0 }), true},
		{"usercf defaults", cf(func(*UserCFConfig) {}), false},
		{"usercf no similar users", cf(func(c *UserCFConfig) { c.TopKUsers = 0 }), true},
		{"usercf negative cap", cf(func(c *UserCFConfig) { c.MaxItemUsers = -1 }), true},
		{"spike defaults", spike(func(*SpikeConfig) {}), false},
		{"spike zero threshold", spike(func(c *SpikeConfig) { c.Threshold = 0 }), true},
		{"spike no window", spike(func(c *SpikeConfig) { c.Window = 0 }), true},
	}
	for _, tc := range tests {
		if (tc.err != nil) != tc.wantErr {
			t.Errorf("%s: err = %v, want error %v", tc.name, tc.err, tc.wantErr)
		}
	}
}
