package recall

import (
	"cmp"
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"reelfeed/catalog"
	"reelfeed/event"
	"reelfeed/profile"
)

// jobsEventLog is a slice-backed EventLog for the job tests; events must be
// oldest first, as the real log replays them.
type jobsEventLog struct {
	events []event.Event
	// afterEach, when set, runs after each event handed out (tests use it
	// to cancel a replay part way).
	afterEach func(i int)
}

func (l *jobsEventLog) Replay(ctx context.Context, since time.Time, fn func(event.Event) error) error {
	for i, e := range l.events {
		if err := ctx.Err(); err != nil {
			return err
		}
		if e.TS.Before(since) {
			continue
		}
		if err := fn(e); err != nil {
			return err
		}
		if l.afterEach != nil {
			l.afterEach(i)
		}
	}
	return nil
}

// jobsLogBuilder writes events with unique ids and keeps them in time order.
type jobsLogBuilder struct {
	events []event.Event
}

func (b *jobsLogBuilder) add(user, video string, typ event.Type, ts time.Time) {
	b.events = append(b.events, event.Event{
		ID: fmt.Sprintf("e%d", len(b.events)), UserID: user, VideoID: video, Type: typ, TS: ts,
	})
}

func (b *jobsLogBuilder) log() *jobsEventLog {
	slices.SortStableFunc(b.events, func(x, y event.Event) int { return x.TS.Compare(y.TS) })
	return &jobsEventLog{events: b.events}
}

// jobsCompactLog replays a large synthetic log without holding millions of
// event.Event values: 16 bytes an event, ids interned.
type jobsCompactLog struct {
	users, videos []string
	events        []jobsCompactEvent
	base          time.Time
}

type jobsCompactEvent struct {
	user, video, sec int32
	typ              event.Type
}

func (l *jobsCompactLog) Replay(ctx context.Context, since time.Time, fn func(event.Event) error) error {
	for i, ce := range l.events {
		if i%8192 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		ts := l.base.Add(time.Duration(ce.sec) * time.Second)
		if ts.Before(since) {
			continue
		}
		if err := fn(event.Event{UserID: l.users[ce.user], VideoID: l.videos[ce.video], Type: ce.typ, TS: ts}); err != nil {
			return err
		}
	}
	return nil
}

// syntheticWorld builds users × eventsPerUser events over a week on videos
// with a Zipf popularity, in sessions of a few minutes between events, and
// a mix of behaviours like a real feed's (impressions left out: the jobs
// skip them first thing).
func syntheticWorld(users, eventsPerUser, videos int, now time.Time) *jobsCompactLog {
	rng := rand.New(rand.NewPCG(42, 7))
	zipf := rand.NewZipf(rng, 1.1, 4, uint64(videos-1))
	l := &jobsCompactLog{base: now.Add(-7 * 24 * time.Hour)}
	for i := range users {
		l.users = append(l.users, fmt.Sprintf("user-%06d", i))
	}
	for i := range videos {
		l.videos = append(l.videos, fmt.Sprintf("video-%06d", i))
	}
	week := int32(7 * 24 * 3600)
	l.events = make([]jobsCompactEvent, 0, users*eventsPerUser)
	for u := range users {
		sec := rng.Int32N(week / 2)
		// A user's taste: a slice of the catalog they mostly stay in, so
		// co-engagement has structure to find.
		taste := rng.IntN(videos)
		for range eventsPerUser {
			if rng.IntN(10) == 0 {
				sec += rng.Int32N(24 * 3600) // a new session
			} else {
				sec += 10 + rng.Int32N(300)
			}
			sec = min(sec, week-1)
			video := int(zipf.Uint64())
			if rng.IntN(2) == 0 {
				video = (taste + rng.IntN(200)) % videos
			}
			var typ event.Type
			switch p := rng.IntN(100); {
			case p < 35:
				typ = event.Play
			case p < 65:
				typ = event.Complete
			case p < 80:
				typ = event.Like
			case p < 85:
				typ = event.Comment
			case p < 90:
				typ = event.Share
			default:
				typ = event.Skip
			}
			l.events = append(l.events, jobsCompactEvent{user: int32(u), video: int32(video), sec: sec, typ: typ})
		}
	}
	slices.SortFunc(l.events, func(a, b jobsCompactEvent) int { return cmp.Compare(a.sec, b.sec) })
	return l
}

// jobsCatalog returns a catalog holding videos with the given ids, each
// allowed everywhere, quality 0.5, published a day before now.
func jobsCatalog(now time.Time, ids ...string) *catalog.Catalog {
	cat := catalog.New()
	for _, id := range ids {
		cat.Upsert(&catalog.Video{
			ID: id, UploaderID: "up-" + id, Category: "c", Kind: catalog.KindVideo,
			Quality: 0.5, PublishedAt: now.Add(-24 * time.Hour),
		})
	}
	return cat
}

// jobsRequest is a feed request by user with the given positive (and so
// played) videos, engaged with at the given times.
func jobsRequest(user, region string, now time.Time, positive map[string]time.Time) *Request {
	p := &profile.Profile{
		UserID: user, Played: map[string]time.Time{}, Positive: map[string]time.Time{}, Shown: map[string]time.Time{},
	}
	for id, at := range positive {
		p.Positive[id] = at
		p.Played[id] = at
	}
	return &Request{UserID: user, Profile: p, Region: region, Now: now, Segment: SegmentActive}
}

func candidateIDs(cs []Candidate) []string {
	ids := make([]string, len(cs))
	for i, c := range cs {
		ids[i] = c.Video.ID
	}
	return ids
}

func mustRun(t testing.TB, j Job) JobResult {
	t.Helper()
	res, err := j.Run(context.Background())
	if err != nil {
		t.Fatalf("%s: %v", j.Name(), err)
	}
	return res
}

// benchmarkJob runs job b.N times and reports, besides time and memory, the
// CPU seconds each run used (wall time alone misleads on a shared machine)
// and the size of what it produced.
func benchmarkJob(b *testing.B, job Job) {
	cpu := processCPUSeconds
	b.ReportAllocs()
	b.ResetTimer()
	start := cpu()
	var res JobResult
	for b.Loop() {
		res = mustRun(b, job)
	}
	b.ReportMetric((cpu()-start)/float64(b.N), "cpu-s/op")
	b.ReportMetric(float64(res.Lists), "lists")
	b.ReportMetric(float64(res.Pairs), "pairs")
}
