package recall

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"testing"
	"time"

	"reelfeed/event"
)

func newTestUserCFJob(cfg UserCFConfig, log EventLog, store ListStore) *UserCFJob {
	j := jobsMust(NewUserCFJob(cfg, log, store, nil, nil))
	j.now = func() time.Time { return jobsNow }
	return j
}

// tasteLog: five "peers" completed or liked A, B, C and D; "target" liked A
// and B; "skipper" liked A and B and skipped C; five "others" with a taste
// of their own liked X, Y and Z.
func tasteLog() *jobsEventLog {
	var b jobsLogBuilder
	at := jobsNow.Add(-24 * time.Hour)
	for u := range 5 {
		peer := fmt.Sprint("peer-", u)
		b.add(peer, "A", event.Complete, at)
		b.add(peer, "B", event.Like, at)
		b.add(peer, "C", event.Complete, at)
		b.add(peer, "C", event.Like, at)
		if u < 2 {
			b.add(peer, "D", event.Complete, at)
		}
		other := fmt.Sprint("other-", u)
		for _, v := range []string{"X", "Y", "Z"} {
			b.add(other, v, event.Like, at)
		}
	}
	b.add("target", "A", event.Like, at)
	b.add("target", "B", event.Like, at)
	b.add("target", "X", event.Impression, at) // shown, not engaged: still recommendable
	b.add("skipper", "A", event.Like, at)
	b.add("skipper", "B", event.Like, at)
	b.add("skipper", "C", event.Skip, at)
	return b.log()
}

func TestUserCFJobRecommendsWhatSimilarUsersLiked(t *testing.T) {
	ctx := context.Background()
	store := NewMemoryListStore()
	res := mustRun(t, newTestUserCFJob(DefaultUserCFConfig(), tasteLog(), store))

	list := func(user string) []string {
		l, err := store.Get(ctx, userCFNamespace, user, 0)
		if err != nil {
			t.Fatal(err)
		}
		ids := make([]string, len(l))
		for i, s := range l {
			ids[i] = s.ID
		}
		return ids
	}
	if got := list("target"); !slices.Equal(got, []string{"C", "D"}) {
		t.Errorf("target's list = %v, want [C D]: what similar users liked, most liked first, nothing the target engaged with, nothing from users of other taste", got)
	}
	if got := list("skipper"); !slices.Equal(got, []string{"D"}) {
		t.Errorf("skipper's list = %v, want [D]: C was skipped, so engaged with", got)
	}
	if got := list("other-0"); len(got) != 0 {
		t.Errorf("other-0's list = %v: similar users engaged with nothing it has not", got)
	}
	if res.Users != 12 || res.Lists == 0 || res.Pairs == 0 || res.Items == 0 {
		t.Errorf("result = %+v", res)
	}
}

func TestUserCFJobBoundsWorkPerVideo(t *testing.T) {
	// 300 users all liked the popular P; ten of them also liked N. With
	// MaxItemUsers 50 only P's 50 most recent engagers are looked at, so the
	// most recent user still finds the others through N.
	var b jobsLogBuilder
	for u := range 300 {
		at := jobsNow.Add(-time.Duration(300-u) * time.Minute)
		user := fmt.Sprintf("u%03d", u)
		b.add(user, "P", event.Like, at)
		if u >= 290 {
			b.add(user, "N", event.Like, at)
			if u < 299 {
				b.add(user, fmt.Sprint("pick-", u), event.Like, at)
			}
		}
	}
	cfg := DefaultUserCFConfig()
	cfg.MaxItemUsers = 50
	store := NewMemoryListStore()
	mustRun(t, newTestUserCFJob(cfg, b.log(), store))
	l, _ := store.Get(context.Background(), userCFNamespace, "u299", 0)
	if len(l) == 0 || !slices.ContainsFunc(l, func(s Scored) bool { return s.ID == "pick-290" }) {
		t.Errorf("u299's list = %v, want the picks of the users sharing N", l)
	}
}

func TestUserCFSourceReadsTheUsersList(t *testing.T) {
	ctx := context.Background()
	store := NewMemoryListStore()
	mustRun(t, newTestUserCFJob(DefaultUserCFConfig(), tasteLog(), store))
	cat := jobsCatalog(jobsNow, "A", "B", "C", "D", "X")
	src := NewUserCFSource(store, cat)

	req := jobsRequest("target", "", jobsNow, map[string]time.Time{"A": jobsNow, "B": jobsNow})
	got, err := src.Recall(ctx, req, 10)
	if err != nil {
		t.Fatal(err)
	}
	if ids := candidateIDs(got); !slices.Equal(ids, []string{"C", "D"}) {
		t.Errorf("usercf = %v, want [C D]", ids)
	}
	for _, c := range got {
		if c.Branch != "usercf" {
			t.Errorf("candidate branch = %q", c.Branch)
		}
	}

	req.Profile.Shown["C"] = jobsNow
	if ids := candidateIDs(jobsMust(src.Recall(ctx, req, 10))); !slices.Equal(ids, []string{"D", "C"}) {
		t.Errorf("with C shown: %v, want [D C] (unseen first)", ids)
	}
	req.Profile.Played["D"] = jobsNow
	if ids := candidateIDs(jobsMust(src.Recall(ctx, req, 10))); !slices.Equal(ids, []string{"C"}) {
		t.Errorf("with D played since the job ran: %v, want [C]", ids)
	}
	if ids := candidateIDs(jobsMust(src.Recall(ctx, jobsRequest("stranger", "", jobsNow, nil), 10))); len(ids) != 0 {
		t.Errorf("a user without a list got %v", ids)
	}
}

func TestUserCFJobHonoursCancellation(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := newTestUserCFJob(DefaultUserCFConfig(), tasteLog(), NewMemoryListStore()).Run(ctx)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Run with a cancelled ctx = %v, want context.Canceled", err)
	}
}

func jobsMust[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// BenchmarkUserCFJob runs the job over 50k users × 50 events (2.5M events,
// 100k videos) with every CPU.
func BenchmarkUserCFJob(b *testing.B) {
	world := syntheticWorld(50_000, 50, 100_000, jobsNow)
	cfg := DefaultUserCFConfig()
	cfg.Workers = runtime.GOMAXPROCS(0)
	job := newTestUserCFJob(cfg, world, NewMemoryListStore())
	benchmarkJob(b, job)
}
