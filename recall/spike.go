package recall

import (
	"errors"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"reelfeed/event"
)

// SpikeConfig tunes the SpikeDetector.
type SpikeConfig struct {
	// Window is how far back a video's engagement is summed.
	Window time.Duration
	// Threshold is the weighted engagement within Window at which a video
	// spikes.
	Threshold float64
	// Debounce is the least time between two triggered hot-list runs.
	Debounce time.Duration
	// Weights per event type; types weighted 0 (impressions) are ignored.
	Weights [event.NumTypes]float64
}

// DefaultSpikeConfig returns the documented defaults: about 25 completes (or
// 33 likes) on one video within a minute trigger a run, at most one a minute.
func DefaultSpikeConfig() SpikeConfig {
	return SpikeConfig{
		Window:    time.Minute,
		Threshold: 100,
		Debounce:  time.Minute,
		Weights:   defaultEngagementWeights(),
	}
}

// Validate reports the first setting that cannot work.
func (c SpikeConfig) Validate() error {
	switch {
	case c.Window <= 0:
		return errors.New("recall: spike window must be > 0")
	case c.Threshold <= 0:
		return errors.New("recall: spike threshold must be > 0")
	case c.Debounce < 0:
		return errors.New("recall: spike debounce must be >= 0")
	case !anyPositive(c.Weights):
		return errors.New("recall: spike weights must weight some event type positively")
	}
	return nil
}

// defaultEngagementWeights is the hot-list and spike weighting: the design's
// order complete > like > comment > share > play, skips and dislikes negative.
func defaultEngagementWeights() [event.NumTypes]float64 {
	var w [event.NumTypes]float64
	w[event.Play] = 0.5
	w[event.Complete] = 4
	w[event.Like] = 3
	w[event.Comment] = 2
	w[event.Share] = 1.5
	w[event.Skip] = -0.5
	w[event.Dislike] = -2
	return w
}

// spikeBuckets splits the window: a sum over buckets slides in steps of
// Window/spikeBuckets, a few bytes per video instead of a ring per event.
const spikeBuckets = 6

// spikeMaxTracked bounds the videos tracked within one window, so a flood of
// events for made-up ids cannot grow the detector without bound.
const spikeMaxTracked = 1 << 18

// SpikeDetector watches applied events for a video whose engagement within
// the last Window passes Threshold, and then signals Triggers so the hot
// lists are rebuilt at once rather than at the next tick. A video triggers
// when it crosses the threshold, and again only after it fell back below
// half of it. Signals are debounced: at most one per Debounce; a spike seen
// during the quiet time fires when it ends (on the next Observe after it).
//
// Events are bucketed by event time and those older than Window at arrival
// are ignored, so replaying the stream after a restart does not trigger.
type SpikeDetector struct {
	cfg         SpikeConfig
	bucketNanos int64
	logger      *zap.Logger
	now         func() time.Time
	trigger     chan struct{}
	spikes      prometheus.Counter
	fired       prometheus.Counter

	mu        sync.Mutex
	videos    map[string]*spikeCounter
	lastSweep time.Time
	lastFire  time.Time
	pending   bool
}

type spikeCounter struct {
	sums    [spikeBuckets]float64
	buckets [spikeBuckets]int64 // absolute bucket number each sum belongs to
	// spiking is set when the video crossed the threshold and cleared when
	// it fell below half of it, so a video staying hot triggers once.
	spiking bool
}

// NewSpikeDetector returns a detector; logger and reg may be nil.
func NewSpikeDetector(cfg SpikeConfig, logger *zap.Logger, reg prometheus.Registerer) (*SpikeDetector, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = zap.NewNop()
	}
	d := &SpikeDetector{
		cfg:         cfg,
		bucketNanos: max(int64(cfg.Window)/spikeBuckets, 1),
		logger:      logger,
		now:         time.Now,
		trigger:     make(chan struct{}, 1),
		videos:      map[string]*spikeCounter{},
		spikes: registerJobCollector(reg, prometheus.NewCounter(prometheus.CounterOpts{
			Name: "reelfeed_recall_spikes_total",
			Help: "Videos whose engagement passed the spike threshold.",
		})),
		fired: registerJobCollector(reg, prometheus.NewCounter(prometheus.CounterOpts{
			Name: "reelfeed_recall_spike_triggers_total",
			Help: "Hot-list runs triggered by engagement spikes (after debouncing).",
		})),
	}
	return d, nil
}

// Triggers fires once per debounced spike; pass it to RunEvery with the hot
// job. It is buffered by one: a trigger nobody has read yet absorbs the next.
func (d *SpikeDetector) Triggers() <-chan struct{} { return d.trigger }

// Observe counts a batch of applied events. The ingest consumer calls it with
// every batch; it does no I/O and never blocks.
func (d *SpikeDetector) Observe(events []event.Event) {
	now := d.now()
	nowBucket := now.UnixNano() / d.bucketNanos
	oldest := nowBucket - spikeBuckets + 1

	d.mu.Lock()
	defer d.mu.Unlock()
	for i := range events {
		e := &events[i]
		if !e.Type.Valid() {
			continue
		}
		w := d.cfg.Weights[e.Type]
		if w == 0 {
			continue
		}
		ts := e.TS
		if ts.IsZero() || ts.After(now) {
			ts = now
		}
		if now.Sub(ts) > d.cfg.Window {
			continue
		}
		b := ts.UnixNano() / d.bucketNanos
		if b < oldest {
			continue
		}
		c := d.videos[e.VideoID]
		if c == nil {
			if len(d.videos) >= spikeMaxTracked {
				continue
			}
			c = &spikeCounter{}
			d.videos[e.VideoID] = c
		}
		slot := b % spikeBuckets
		if c.buckets[slot] != b {
			c.buckets[slot] = b
			c.sums[slot] = 0
		}
		c.sums[slot] += w
		total := c.total(oldest)
		switch {
		case !c.spiking && total >= d.cfg.Threshold:
			c.spiking = true
			d.spikes.Inc()
			d.logger.Info("engagement spike", zap.String("video_id", e.VideoID), zap.Float64("engagement", total))
			d.pending = true
		case c.spiking && total < d.cfg.Threshold/2:
			c.spiking = false
		}
	}
	if d.pending && (d.lastFire.IsZero() || now.Sub(d.lastFire) >= d.cfg.Debounce) {
		d.pending = false
		d.lastFire = now
		d.fired.Inc()
		select {
		case d.trigger <- struct{}{}:
		default: // a run is already pending and will include this spike
		}
	}
	if now.Sub(d.lastSweep) >= d.cfg.Window {
		d.sweep(oldest)
		d.lastSweep = now
	}
}

func (c *spikeCounter) total(oldest int64) float64 {
	var s float64
	for i, b := range c.buckets {
		if b >= oldest {
			s += c.sums[i]
		}
	}
	return s
}

// sweep forgets videos with nothing inside the window, which also re-arms
// them.
func (d *SpikeDetector) sweep(oldest int64) {
	for id, c := range d.videos {
		live := false
		for _, b := range c.buckets {
			if b >= oldest {
				live = true
				break
			}
		}
		if !live {
			delete(d.videos, id)
		}
	}
}
