package sim

import (
	"errors"
	"fmt"
	"io"
	"time"
)

// Target is a running reelfeed server and a token with role service or
// admin (admin also lets the simulator run background jobs).
type Target struct {
	BaseURL string
	Token   string
}

// Policy names, as they appear in reports.
const (
	PolicyReelfeed = "reelfeed" // asks the server
	PolicyRandom   = "random"   // uniformly random unseen videos
	PolicyPopular  = "popular"  // most engaged overall so far, from observed events
	PolicyOracle   = "oracle"   // best by hidden taste and quality: the upper bound
)

// Policies lists every policy in report order.
func Policies() []string {
	return []string{PolicyReelfeed, PolicyRandom, PolicyPopular, PolicyOracle}
}

// DefaultJobs are the server's background jobs the simulator runs after
// loading the world and after every round, standing in for the timers that
// would have fired during the simulated time.
func DefaultJobs() []string { return []string{"hotlist", "i2i", "usercf", "longterm", "train"} }

// Options describe a simulation. Zero values take the documented defaults.
type Options struct {
	Users  int   // starting users, each with a history (default 500)
	Videos int   // starting catalog (default 3000)
	Rounds int   // rounds to simulate (default 10)
	Seed   int64 // world and client-side policies are a pure function of it

	FeedCount      int     // videos per feed request, 1..50 (default 10)
	HistoryPerUser int     // mean past exposures per starting user (default 20)
	NewUserRate    float64 // users joining per round as a share of Users (default 0.01)
	UploadRate     float64 // uploads per round as a share of Videos (default 0.01)
	// RoundSpan is the simulated time one round covers (default 5m). Rounds
	// are laid end to end so the last one ends when the run starts: event
	// times are always in the past, never ahead of the server's clock.
	RoundSpan time.Duration

	// Policy is what Run serves with (default reelfeed; the others need no
	// server).
	Policy string
	// Concurrency is how many simulated users talk to the server at once
	// (default 8).
	Concurrency int
	// Jobs are run on the server after loading and every JobsEvery rounds;
	// nil means DefaultJobs, an empty slice none. Jobs the server does not
	// know, or a token that may not run them, produce one warning each.
	Jobs      []string
	JobsEvery int // default 1
	// CatchUpTimeout bounds each wait for the server to apply what was
	// posted before the next round (default 30s); on expiry a warning is
	// printed and the run goes on.
	CatchUpTimeout time.Duration

	// JSON prints one JSON line instead of the readable report.
	JSON bool
	// ExportDir, when set, receives videos.jsonl, users.jsonl and
	// events.jsonl (see docs/data-formats.md).
	ExportDir string
	// Progress receives progress lines, the loading progress bar and
	// warnings (typically os.Stderr); nil discards them.
	Progress io.Writer
	// Pause waits between rounds (Demo; default 0 for Run and Compare).
	Pause time.Duration

	now func() time.Time // the wall clock; tests pin it
}

func (o Options) withDefaults() Options {
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	def(&o.Users, 500)
	def(&o.Videos, 3000)
	def(&o.Rounds, 10)
	def(&o.FeedCount, 10)
	def(&o.HistoryPerUser, 20)
	def(&o.Concurrency, 8)
	def(&o.JobsEvery, 1)
	if o.NewUserRate == 0 {
		o.NewUserRate = 0.01
	}
	if o.UploadRate == 0 {
		o.UploadRate = 0.01
	}
	if o.RoundSpan == 0 {
		o.RoundSpan = 5 * time.Minute
	}
	if o.Policy == "" {
		o.Policy = PolicyReelfeed
	}
	if o.Jobs == nil {
		o.Jobs = DefaultJobs()
	}
	if o.CatchUpTimeout == 0 {
		o.CatchUpTimeout = 30 * time.Second
	}
	if o.Progress == nil {
		o.Progress = io.Discard
	}
	if o.now == nil {
		o.now = time.Now
	}
	return o
}

func (o Options) validate() error {
	var errs []error
	if o.Users < 1 {
		errs = append(errs, errors.New("users must be >= 1"))
	}
	if o.Videos < 1 {
		errs = append(errs, errors.New("videos must be >= 1"))
	}
	if o.Rounds < 0 {
		errs = append(errs, errors.New("rounds must be >= 0"))
	}
	if o.FeedCount < 1 || o.FeedCount > 50 {
		errs = append(errs, fmt.Errorf("feed count %d: must be 1..50", o.FeedCount))
	}
	if o.HistoryPerUser < 0 || o.NewUserRate < 0 || o.UploadRate < 0 {
		errs = append(errs, errors.New("history per user and rates must be >= 0"))
	}
	if o.RoundSpan < time.Second {
		errs = append(errs, errors.New("round span must be at least 1s"))
	}
	if o.Concurrency < 1 || o.JobsEvery < 1 {
		errs = append(errs, errors.New("concurrency and jobs-every must be >= 1"))
	}
	known := false
	for _, p := range Policies() {
		known = known || p == o.Policy
	}
	if !known {
		errs = append(errs, fmt.Errorf("unknown policy %q (want one of %v)", o.Policy, Policies()))
	}
	if len(errs) > 0 {
		return fmt.Errorf("sim: %w", errors.Join(errs...))
	}
	return nil
}
