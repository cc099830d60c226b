package recall

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"reelfeed/catalog"
	"reelfeed/event"
)

// UserCFConfig tunes the user-CF job.
type UserCFConfig struct {
	// Interval is how often the job runs on its timer.
	Interval time.Duration
	// Window is how much of the event log is replayed.
	Window time.Duration
	// HalfLife halves the weight of an engagement as it ages.
	HalfLife time.Duration
	// Weights per event type: which behaviours count as positive and how
	// much (a dislike cancels positives on the same video).
	Weights [event.NumTypes]float64
	// TopKUsers is how many similar users each user's list draws on.
	TopKUsers int
	// ListSize is how many videos are stored per user.
	ListSize int
	// MaxItemsPerUser keeps only a user's latest positive videos.
	MaxItemsPerUser int
	// MaxItemUsers bounds the work per video: finding similar users looks
	// at no more than this many of a video's most recent engagers.
	MaxItemUsers int
	// Workers is the job's parallelism (0: half the CPUs).
	Workers int
}

// DefaultUserCFConfig returns the documented defaults.
func DefaultUserCFConfig() UserCFConfig {
	return UserCFConfig{
		Interval:        time.Hour,
		Window:          14 * 24 * time.Hour,
		HalfLife:        7 * 24 * time.Hour,
		Weights:         defaultPositiveWeights(),
		TopKUsers:       30,
		ListSize:        100,
		MaxItemsPerUser: 200,
		MaxItemUsers:    100,
	}
}

// Validate reports the first setting that cannot work.
func (c UserCFConfig) Validate() error {
	switch {
	case c.Window <= 0:
		return errors.New("recall: usercf window must be > 0")
	case c.HalfLife < 0:
		return errors.New("recall: usercf half_life must be >= 0 (0: no decay)")
	case !anyPositive(c.Weights):
		return errors.New("recall: usercf weights must weight some event type positively")
	case c.TopKUsers <= 0:
		return errors.New("recall: usercf top_k_users must be > 0")
	case c.ListSize <= 0:
		return errors.New("recall: usercf list_size must be > 0")
	case c.MaxItemsPerUser < 0 || c.MaxItemUsers < 0:
		return errors.New("recall: usercf max_items_per_user and max_item_users must be >= 0 (0: unbounded)")
	case c.Workers < 0:
		return errors.New("recall: usercf workers must be >= 0 (0: half the CPUs)")
	}
	return nil
}

// UserCFJob finds, for every user, the users most similar by positive
// co-engagement and stores per user the videos those users completed or
// liked that the user has not engaged with (namespace "usercf").
type UserCFJob struct {
	cfg    UserCFConfig
	log    EventLog
	store  ListStore
	runner *jobRunner
	now    func() time.Time
}

// NewUserCFJob returns the user-CF job; logger and reg may be nil.
func NewUserCFJob(cfg UserCFConfig, log EventLog, store ListStore, logger *zap.Logger, reg prometheus.Registerer) (*UserCFJob, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &UserCFJob{cfg: cfg, log: log, store: store, runner: newJobRunner("usercf", logger, reg), now: time.Now}, nil
}

// Name is "usercf", the admin job name.
func (j *UserCFJob) Name() string { return "usercf" }

// Run rebuilds every user's list once.
func (j *UserCFJob) Run(ctx context.Context) (JobResult, error) {
	return j.runner.run(ctx, j.build)
}

type userCFPosting struct {
	user int32
	ts   int32
}

func (j *UserCFJob) build(ctx context.Context, res *JobResult) error {
	now := j.now()
	il, err := replayCFInteractions(ctx, j.log, cfReplayOptions{
		since: now.Add(-j.cfg.Window), now: now,
		weights: j.cfg.Weights, halfLife: j.cfg.HalfLife,
		maxItemsPerUser: j.cfg.MaxItemsPerUser,
		keepEngaged:     true,
	})
	if err != nil {
		return err
	}
	res.Events = il.events
	nv, nu := len(il.videoIDs), len(il.userIDs)

	// Inverted index video → engagers in CSR form, each video's engagers
	// most recent first and cut at MaxItemUsers.
	offsets := make([]int32, nv+1)
	popularity := make([]int32, nv)
	for _, items := range il.items {
		if len(items) > 0 {
			res.Users++
		}
		for _, it := range items {
			popularity[it.video]++
		}
	}
	for v, n := range popularity {
		offsets[v+1] = offsets[v] + n
		if n > 0 {
			res.Videos++
		}
	}
	postings := make([]userCFPosting, offsets[nv])
	fill := slices.Clone(offsets[:nv])
	for u, items := range il.items {
		for _, it := range items {
			postings[fill[it.video]] = userCFPosting{int32(u), it.ts}
			fill[it.video]++
		}
	}
	fill = nil
	maxUsers := int32(j.cfg.MaxItemUsers)
	// Inverse user frequency: sharing a video everyone watched says little
	// about two users' taste.
	iuf := make([]float32, nv)
	for v := range nv {
		iuf[v] = float32(1 / math.Log1p(float64(popularity[v])))
		if maxUsers > 0 && popularity[v] > maxUsers {
			seg := postings[offsets[v]:offsets[v+1]]
			slices.SortFunc(seg, func(a, b userCFPosting) int {
				if c := cmp.Compare(b.ts, a.ts); c != 0 {
					return c
				}
				return cmp.Compare(a.user, b.user)
			})
		}
	}

	// Cosine normalisation, precomputed per user so the inner loop reads a
	// float instead of another user's slice header.
	invNorm := make([]float32, nu)
	for u, items := range il.items {
		if len(items) > 0 {
			invNorm[u] = float32(1 / math.Sqrt(float64(len(items))))
		}
	}

	lists := make([][]cfRanked, nu)
	var pairs atomic.Int64
	var next atomic.Int64
	const chunk = 128
	topUsers := j.cfg.TopKUsers
	listSize := j.cfg.ListSize

	var wg sync.WaitGroup
	for range jobWorkers(j.cfg.Workers) {
		wg.Go(func() {
			simAcc := make([]float32, nu)
			var simTouched []int32
			scoreAcc := make([]float32, nv)
			var scoreTouched []int32
			// excluded[v] == u+1 marks videos user u engaged with.
			excluded := make([]int32, nv)
			similar := newCFTopK(topUsers)
			best := newCFTopK(listSize)
			var found int64
			defer func() { pairs.Add(found) }()
			for ctx.Err() == nil {
				start := int(next.Add(chunk)) - chunk
				if start >= nu {
					return
				}
				for u := start; u < min(start+chunk, nu); u++ {
					items := il.items[u]
					if len(items) == 0 {
						continue
					}
					simTouched = simTouched[:0]
					for _, it := range items {
						seg := postings[offsets[it.video]:offsets[it.video+1]]
						if maxUsers > 0 && len(seg) > int(maxUsers) {
							seg = seg[:maxUsers]
						}
						for _, p := range seg {
							if p.user == int32(u) {
								continue
							}
							if simAcc[p.user] == 0 {
								simTouched = append(simTouched, p.user)
							}
							simAcc[p.user] += iuf[it.video]
						}
					}
					similar.reset()
					for _, v := range simTouched {
						similar.offer(v, simAcc[v]*invNorm[u]*invNorm[v])
						simAcc[v] = 0
					}
					found += int64(len(similar.heap))

					mark := int32(u) + 1
					for _, v := range il.engaged[u] {
						excluded[v] = mark
					}
					scoreTouched = scoreTouched[:0]
					for _, nb := range similar.heap {
						for _, it := range il.items[nb.idx] {
							c := nb.score * it.w
							if excluded[it.video] == mark || c <= 0 {
								continue
							}
							if scoreAcc[it.video] == 0 {
								scoreTouched = append(scoreTouched, it.video)
							}
							scoreAcc[it.video] += c
						}
					}
					best.reset()
					for _, v := range scoreTouched {
						best.offer(v, scoreAcc[v])
						scoreAcc[v] = 0
					}
					if len(best.heap) > 0 {
						lists[u] = best.sorted()
					}
				}
			}
		})
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return err
	}
	res.Pairs = pairs.Load()
	if err := storeLists(ctx, j.store, userCFNamespace, il.userIDs, lists, il.videoIDs, res); err != nil {
		return fmt.Errorf("store user-CF lists: %w", err)
	}
	return nil
}

// UserCFSource is the "usercf" branch: what users with similar taste
// completed or liked, as UserCFJob stored it for this user.
type UserCFSource struct {
	store   ListStore
	catalog *catalog.Catalog
}

// NewUserCFSource returns the user-CF branch over the lists UserCFJob writes.
func NewUserCFSource(store ListStore, cat *catalog.Catalog) *UserCFSource {
	return &UserCFSource{store: store, catalog: cat}
}

// Name is "usercf".
func (s *UserCFSource) Name() string { return "usercf" }

// InProcess implements InProcess: true when the lists are kept in memory.
func (s *UserCFSource) InProcess() bool {
	_, local := s.store.(*MemoryListStore)
	return local
}

// Recall returns up to quota videos of the user's list, skipping videos
// played since the job ran, deleted, or not allowed in the request's region;
// videos already shown to the user come after every unseen one.
func (s *UserCFSource) Recall(ctx context.Context, req *Request, quota int) ([]Candidate, error) {
	if quota <= 0 || req.UserID == "" {
		return nil, ctx.Err()
	}
	list, err := s.store.Get(ctx, userCFNamespace, req.UserID, 0)
	if err != nil {
		return nil, fmt.Errorf("user-CF list: %w", err)
	}
	var played, shown map[string]time.Time
	if req.Profile != nil {
		played, shown = req.Profile.Played, req.Profile.Shown
	}
	out := req.candidates(min(quota, len(list)))
	for _, takeShown := range []bool{false, true} {
		for _, it := range list {
			if len(out) == quota {
				return out, nil
			}
			if _, ok := played[it.ID]; ok {
				continue
			}
			// The first pass takes the unseen videos, the second the shown.
			if _, ok := shown[it.ID]; ok != takeShown {
				continue
			}
			v, ok := s.catalog.Get(it.ID)
			if !ok || !v.AllowedIn(req.Region) {
				continue
			}
			out = append(out, Candidate{Video: v, Branch: "usercf", Score: it.Score})
		}
	}
	return out, nil
}
