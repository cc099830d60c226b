package feed

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// stage identifies a pipeline stage in metrics and debug output.
type stage int

const (
	stageContext stage = iota
	stageRecall
	stageFilter
	stageTruncate
	stageFeatures
	stageRank
	stageSelect
	stageFill
	numStages
)

var stageNames = [numStages]string{"context", "recall", "filter", "truncate", "features", "rank", "select", "fill"}

func (s stage) String() string { return stageNames[s] }

// Branch failure reasons (the fail-open counter's label).
const (
	failError   = "error"
	failTimeout = "timeout"
)

// metrics holds every collector, with label values resolved once so the
// request path does no label lookups.
type metrics struct {
	stageSeconds [numStages]prometheus.Observer
	stageIn      [numStages]prometheus.Counter
	stageOut     [numStages]prometheus.Counter

	branchSeconds    map[string]prometheus.Observer
	branchCandidates map[string]prometheus.Counter
	branchFailures   map[string][2]prometheus.Counter // [error, timeout]

	filterRemoved map[string]prometheus.Counter
	dependency    map[string]prometheus.Counter // fail-open of features, scorer, filters
	served        map[string]prometheus.Counter // by branch label
	requests      map[string]prometheus.Counter // by segment
	empty         prometheus.Counter
}

func newMetrics(reg prometheus.Registerer, branches, filters, servedLabels, deps []string) (*metrics, error) {
	latency := prometheus.ExponentialBuckets(0.0001, 2, 16) // 100µs … 3.3s
	stageSeconds := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: "reelfeed", Subsystem: "feed", Name: "stage_seconds",
		Help: "Time spent in each feed pipeline stage.", Buckets: latency,
	}, []string{"stage"})
	stageCands := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "reelfeed", Subsystem: "feed", Name: "stage_candidates_total",
		Help: "Candidates entering (in) and leaving (out) each stage.",
	}, []string{"stage", "direction"})
	branchSeconds := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: "reelfeed", Subsystem: "feed", Name: "branch_seconds",
		Help: "Recall branch latency, including branches that failed or timed out.", Buckets: latency,
	}, []string{"branch"})
	branchCands := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "reelfeed", Subsystem: "feed", Name: "branch_candidates_total",
		Help: "Candidates returned by each recall branch.",
	}, []string{"branch"})
	branchFail := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "reelfeed", Subsystem: "feed", Name: "branch_failopen_total",
		Help: "Recall branch calls dropped from a request (reason: error or timeout); the request was served without them.",
	}, []string{"branch", "reason"})
	filterRemoved := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "reelfeed", Subsystem: "feed", Name: "filter_removed_total",
		Help: "Candidates removed by each filter.",
	}, []string{"filter"})
	depFail := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "reelfeed", Subsystem: "feed", Name: "dependency_failopen_total",
		Help: "Requests served despite a failing dependency (features: ranked on priors; scorer: ranked by quality; a filter: skipped).",
	}, []string{"dependency"})
	served := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "reelfeed", Subsystem: "feed", Name: "items_served_total",
		Help: "Items served, by the branch credited.",
	}, []string{"branch"})
	requests := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "reelfeed", Subsystem: "feed", Name: "requests_total",
		Help: "Feed requests, by user segment.",
	}, []string{"segment"})
	empty := prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "reelfeed", Subsystem: "feed", Name: "empty_responses_total",
		Help: "Feed responses with no items.",
	})
	m := &metrics{
		branchSeconds:    map[string]prometheus.Observer{},
		branchCandidates: map[string]prometheus.Counter{},
		branchFailures:   map[string][2]prometheus.Counter{},
		filterRemoved:    map[string]prometheus.Counter{},
		dependency:       map[string]prometheus.Counter{},
		served:           map[string]prometheus.Counter{},
		requests:         map[string]prometheus.Counter{},
	}
	var err error
	register := func(c prometheus.Collector) prometheus.Collector {
		if reg == nil || err != nil {
			return c
		}
		if rerr := reg.Register(c); rerr != nil {
			// A second pipeline on the same registry (tests, a reload)
			// shares the first one's collectors.
			var already prometheus.AlreadyRegisteredError
			if errors.As(rerr, &already) {
				return already.ExistingCollector
			}
			err = rerr
		}
		return c
	}
	stageSeconds = register(stageSeconds).(*prometheus.HistogramVec)
	stageCands = register(stageCands).(*prometheus.CounterVec)
	branchSeconds = register(branchSeconds).(*prometheus.HistogramVec)
	branchCands = register(branchCands).(*prometheus.CounterVec)
	branchFail = register(branchFail).(*prometheus.CounterVec)
	filterRemoved = register(filterRemoved).(*prometheus.CounterVec)
	depFail = register(depFail).(*prometheus.CounterVec)
	served = register(served).(*prometheus.CounterVec)
	requests = register(requests).(*prometheus.CounterVec)
	m.empty = register(empty).(prometheus.Counter)
	if err != nil {
		return nil, err
	}
	for s := range numStages {
		m.stageSeconds[s] = stageSeconds.WithLabelValues(s.String())
		m.stageIn[s] = stageCands.WithLabelValues(s.String(), "in")
		m.stageOut[s] = stageCands.WithLabelValues(s.String(), "out")
	}
	for _, b := range branches {
		m.branchSeconds[b] = branchSeconds.WithLabelValues(b)
		m.branchCandidates[b] = branchCands.WithLabelValues(b)
		m.branchFailures[b] = [2]prometheus.Counter{branchFail.WithLabelValues(b, failError), branchFail.WithLabelValues(b, failTimeout)}
	}
	for _, f := range filters {
		m.filterRemoved[f] = filterRemoved.WithLabelValues(f)
	}
	for _, d := range deps {
		m.dependency[d] = depFail.WithLabelValues(d)
	}
	for _, b := range servedLabels {
		m.served[b] = served.WithLabelValues(b)
	}
	for _, s := range []string{"new", "cold", "active"} {
		m.requests[s] = requests.WithLabelValues(s)
	}
	return m, nil
}

func (m *metrics) branchFailed(branch, reason string) {
	i := 0
	if reason == failTimeout {
		i = 1
	}
	m.branchFailures[branch][i].Inc()
}
