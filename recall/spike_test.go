package recall

import (
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"reelfeed/event"
)

// spikeClock is a settable clock for the detector.
type spikeClock struct{ now time.Time }

func (c *spikeClock) advance(d time.Duration) { c.now = c.now.Add(d) }

func newTestSpikeDetector(clock *spikeClock) *SpikeDetector {
	var w [event.NumTypes]float64
	w[event.Complete] = 1
	w[event.Like] = 2
	d := jobsMust(NewSpikeDetector(SpikeConfig{Window: time.Minute, Threshold: 10, Debounce: time.Minute, Weights: w}, nil, prometheus.NewRegistry()))
	d.now = func() time.Time { return clock.now }
	return d
}

// burst returns n events of typ on video, at time at.
func burst(video string, typ event.Type, n int, at time.Time) []event.Event {
	out := make([]event.Event, n)
	for i := range out {
		out[i] = event.Event{ID: fmt.Sprint(video, i), UserID: fmt.Sprint("u", i), VideoID: video, Type: typ, TS: at}
	}
	return out
}

func triggered(d *SpikeDetector) bool {
	select {
	case <-d.Triggers():
		return true
	default:
		return false
	}
}

func TestSpikeDetectorTriggersOncePastThresholdAndDebounces(t *testing.T) {
	clock := &spikeClock{now: jobsNow}
	d := newTestSpikeDetector(clock)
	steps := []struct {
		name    string
		advance time.Duration
		events  []event.Event
		want    bool
	}{
		{name: "below threshold", events: burst("v1", event.Complete, 9, jobsNow), want: false},
		{name: "impressions do not count", events: burst("v1", event.Impression, 100, jobsNow), want: false},
		{name: "crosses threshold", advance: time.Second, events: burst("v1", event.Complete, 1, jobsNow.Add(time.Second)), want: true},
		{name: "staying hot does not retrigger", advance: time.Second, events: burst("v1", event.Like, 20, jobsNow.Add(2*time.Second)), want: false},
		{name: "another spike within debounce waits", advance: 10 * time.Second, events: burst("v2", event.Like, 5, jobsNow.Add(12*time.Second)), want: false},
		{name: "the waiting spike fires once debounce ends", advance: 50 * time.Second, events: burst("v9", event.Impression, 1, jobsNow.Add(62*time.Second)), want: true},
		{name: "nothing left to fire", advance: 2 * time.Minute, events: burst("v9", event.Impression, 1, jobsNow.Add(182*time.Second)), want: false},
		{name: "a re-armed video spikes again", advance: time.Second, events: burst("v1", event.Like, 5, jobsNow.Add(183*time.Second)), want: true},
	}
	for _, st := range steps {
		clock.advance(st.advance)
		d.Observe(st.events)
		if got := triggered(d); got != st.want {
			t.Fatalf("%s: triggered = %v, want %v", st.name, got, st.want)
		}
	}
}

func TestSpikeDetectorCountsOnlyTheRecentWindow(t *testing.T) {
	tests := []struct {
		name   string
		events func(now time.Time) [][]event.Event // batches, a second apart
		gap    time.Duration                       // clock advance between batches
		want   bool
	}{
		{
			name: "replayed old events",
			events: func(now time.Time) [][]event.Event {
				return [][]event.Event{burst("old", event.Complete, 50, now.Add(-2*time.Minute))}
			},
			want: false,
		},
		{
			name: "engagement spread over more than the window",
			events: func(now time.Time) [][]event.Event {
				return [][]event.Event{
					burst("slow", event.Complete, 6, now),
					burst("slow", event.Complete, 6, now.Add(70*time.Second)),
				}
			},
			gap:  70 * time.Second,
			want: false,
		},
		{
			name: "engagement within the window",
			events: func(now time.Time) [][]event.Event {
				return [][]event.Event{
					burst("fast", event.Complete, 6, now),
					burst("fast", event.Complete, 6, now.Add(30*time.Second)),
				}
			},
			gap:  30 * time.Second,
			want: true,
		},
		{
			name: "future timestamps count as now",
			events: func(now time.Time) [][]event.Event {
				return [][]event.Event{burst("skewed", event.Like, 5, now.Add(time.Hour))}
			},
			want: true,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clock := &spikeClock{now: jobsNow}
			d := newTestSpikeDetector(clock)
			fired := false
			for i, batch := range tc.events(jobsNow) {
				if i > 0 {
					clock.advance(tc.gap)
				}
				d.Observe(batch)
				fired = fired || triggered(d)
			}
			if fired != tc.want {
				t.Errorf("triggered = %v, want %v", fired, tc.want)
			}
		})
	}
}

func TestSpikeDetectorForgetsQuietVideos(t *testing.T) {
	clock := &spikeClock{now: jobsNow}
	d := newTestSpikeDetector(clock)
	for i := range 100 {
		d.Observe(burst(fmt.Sprint("v", i), event.Complete, 1, clock.now))
	}
	clock.advance(3 * time.Minute)
	d.Observe(burst("late", event.Complete, 1, clock.now))
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.videos) != 1 {
		t.Errorf("detector tracks %d videos after the others went quiet, want 1", len(d.videos))
	}
}

func BenchmarkSpikeDetectorObserve(b *testing.B) {
	clock := &spikeClock{now: jobsNow}
	d := newTestSpikeDetector(clock)
	batch := make([]event.Event, 500)
	for i := range batch {
		batch[i] = event.Event{VideoID: fmt.Sprint("v", i%200), Type: event.Type(i % int(event.NumTypes)), TS: jobsNow}
	}
	b.ReportAllocs()
	for b.Loop() {
		d.Observe(batch)
	}
}
