package world

import (
	"encoding/json"
	"math"
	"reflect"
	"testing"
	"time"

	"reelfeed/event"
)

var testStart = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

func testConfig(seed int64) Config {
	return Config{Seed: seed, Users: 120, Videos: 600, HistoryPerUser: 12, NewUserRate: 0.05, UploadRate: 0.02, Start: testStart}
}

// snapshot renders everything observable about a world after some rounds.
func snapshot(t *testing.T, cfg Config, rounds int) string {
	t.Helper()
	w, err := Generate(cfg)
	if err != nil {
		t.Fatal(err)
	}
	type roundView struct {
		NewVideos, NewUsers, Active []string
		Appeal                      []float64
	}
	var out struct {
		Videos  []any
		Users   []any
		History [][]Exposure
		Rounds  []roundView
	}
	for _, u := range w.Users {
		out.History = append(out.History, w.History(u))
	}
	for r := 0; r < rounds; r++ {
		from := testStart.Add(time.Duration(r) * 5 * time.Minute)
		ch, err := w.Advance(r, from, from.Add(5*time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		var rv roundView
		for _, v := range ch.NewVideos {
			rv.NewVideos = append(rv.NewVideos, v.Meta.ID)
		}
		for _, u := range ch.NewUsers {
			rv.NewUsers = append(rv.NewUsers, u.Meta.ID)
		}
		for _, u := range ch.Active {
			rv.Active = append(rv.Active, u.Meta.ID)
			rv.Appeal = append(rv.Appeal, w.Appeal(u, w.Videos[u.Index%len(w.Videos)]))
		}
		out.Rounds = append(out.Rounds, rv)
	}
	for _, v := range w.Videos {
		out.Videos = append(out.Videos, v.Meta)
	}
	for _, u := range w.Users {
		out.Users = append(out.Users, u.Meta)
	}
	b, err := json.Marshal(out)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestWorldIsAPureFunctionOfTheSeed(t *testing.T) {
	a, b := snapshot(t, testConfig(7), 4), snapshot(t, testConfig(7), 4)
	if a != b {
		t.Fatal("two worlds from the same seed differ")
	}
	if c := snapshot(t, testConfig(8), 4); c == a {
		t.Fatal("different seeds produced the same world")
	}
}

func TestHistoryDoesNotDependOnWhenItIsAsked(t *testing.T) {
	w, err := Generate(testConfig(3))
	if err != nil {
		t.Fatal(err)
	}
	u := w.Users[5]
	before := w.History(u)
	for r := 0; r < 3; r++ {
		if _, err := w.Advance(r, testStart, testStart.Add(time.Minute)); err != nil {
			t.Fatal(err)
		}
	}
	if after := w.History(u); !reflect.DeepEqual(before, after) {
		t.Fatal("a user's history changed after the world advanced")
	}
	if len(before) == 0 {
		t.Fatal("a starting user has no history")
	}
}

func TestGeneratedObjectsAreValidAPIObjects(t *testing.T) {
	w, err := Generate(testConfig(11))
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range w.Videos {
		m := v.Meta
		m.Normalize(testStart)
		if bad := m.Validate(); len(bad) > 0 {
			t.Fatalf("video %s invalid: %v", m.ID, bad)
		}
		if !m.PublishedAt.Before(testStart) {
			t.Fatalf("starting video %s published at %s, not before the start", m.ID, m.PublishedAt)
		}
	}
	for _, u := range w.Users {
		m := u.Meta
		m.Normalize()
		if bad := m.Validate(); len(bad) > 0 {
			t.Fatalf("user %s invalid: %v", m.ID, bad)
		}
	}
	ids := map[string]bool{}
	for _, u := range w.Users {
		for _, x := range w.History(u) {
			for _, ev := range x.Events(u.Meta.ID) {
				if ids[ev.ID] {
					t.Fatalf("duplicate event id %s", ev.ID)
				}
				ids[ev.ID] = true
				if !ev.TS.Before(testStart) {
					t.Fatalf("history event at %s, not before the start %s", ev.TS, testStart)
				}
				if ev.TS.Before(x.Video.Meta.PublishedAt) {
					t.Fatalf("event on %s at %s, before the video was published at %s", ev.VideoID, ev.TS, x.Video.Meta.PublishedAt)
				}
				if !x.Video.Meta.AllowedIn(u.Meta.Region) {
					t.Fatalf("user in %s was shown %s, restricted to %v", u.Meta.Region, x.Video.Meta.ID, x.Video.Meta.Regions)
				}
			}
		}
	}
}

func TestUsersStronglyPreferTwoOrThreeCategories(t *testing.T) {
	w, err := Generate(testConfig(5))
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range w.Users {
		strong := 0
		for _, t := range u.categories {
			if t >= 0.5 {
				strong++
			}
		}
		if strong < 2 || strong > 3 {
			t.Fatalf("user %s has %d strong categories: %v", u.Meta.ID, strong, u.categories)
		}
	}
}

func TestNewUsersJoinAndVideosArriveDuringTheRun(t *testing.T) {
	w, err := Generate(testConfig(9))
	if err != nil {
		t.Fatal(err)
	}
	from := testStart
	to := from.Add(5 * time.Minute)
	var joined, uploaded int
	for r := 0; r < 10; r++ {
		ch, err := w.Advance(r, from, to)
		if err != nil {
			t.Fatal(err)
		}
		for _, u := range ch.NewUsers {
			if !u.Active || w.History(u) != nil {
				t.Fatalf("new user %s: active %v, history %d", u.Meta.ID, u.Active, len(w.History(u)))
			}
		}
		for _, v := range ch.NewVideos {
			if v.Meta.PublishedAt.Before(from) || v.Meta.PublishedAt.After(to) {
				t.Fatalf("video uploaded in round %d published at %s, outside [%s, %s]", r, v.Meta.PublishedAt, from, to)
			}
		}
		joined += len(ch.NewUsers)
		uploaded += len(ch.NewVideos)
		from, to = to, to.Add(5*time.Minute)
	}
	// 120 users × 5% and 600 videos × 2% per round, 10 rounds.
	if joined < 30 || joined > 90 || uploaded < 80 || uploaded > 160 {
		t.Fatalf("over 10 rounds %d users joined (want ~60) and %d videos were uploaded (want ~120)", joined, uploaded)
	}
	if _, err := w.Advance(3, from, to); err == nil {
		t.Fatal("advancing to a past round succeeded")
	}
}

// lab builds a user and videos by hand, to probe the response model.
func lab() (*World, *User) {
	w := &World{}
	w.buildVocabulary()
	w.Creators = []Creator{{ID: "c0"}, {ID: "c1"}}
	u := &User{categories: make([]float64, len(categorySpecs)), tags: map[int]float64{}, creators: map[int]float64{0: 0.9}, burst: -1}
	u.categories[0] = 1.0 // comedy
	u.categories[1] = 0.05
	u.tags[w.catTags[0][0]] = 0.9
	return w, u
}

func labVideo(w *World, category int, quality float64, liked bool) *Video {
	v := &Video{Category: category, Creator: 1, Tags: []int{w.catTags[category][1]}}
	if liked {
		v.Creator = 0
		v.Tags = []int{w.catTags[category][0]}
	}
	v.Meta.Quality = quality
	v.Meta.DurationMs = 20000
	return v
}

func TestResponseModelRewardsTasteMoreThanQuality(t *testing.T) {
	w, u := lab()
	cases := []struct {
		name  string
		video *Video
	}{
		{"liked category, tag and creator, high quality", labVideo(w, 0, 0.9, true)},
		{"liked category, high quality", labVideo(w, 0, 0.9, false)},
		{"liked category, low quality", labVideo(w, 0, 0.2, false)},
		{"other category, high quality", labVideo(w, 1, 0.9, false)},
		{"other category, low quality", labVideo(w, 1, 0.2, false)},
	}
	type stats struct{ watch, complete, like, skip float64 }
	const n = 20000
	got := make([]stats, len(cases))
	for i, c := range cases {
		rng := RNG(1, 999, uint64(i))
		for k := 0; k < n; k++ {
			r := w.Respond(u, c.video, false, rng)
			if r.WatchFraction < 0 || r.WatchFraction > 1 {
				t.Fatalf("%s: watch fraction %v", c.name, r.WatchFraction)
			}
			got[i].watch += r.WatchFraction / n
			got[i].complete += b2f(r.Complete) / n
			got[i].like += b2f(r.Like) / n
			got[i].skip += b2f(r.Skip) / n
		}
		t.Logf("%-48s watch %.3f complete %.3f like %.3f skip %.3f", c.name, got[i].watch, got[i].complete, got[i].like, got[i].skip)
	}
	for i := 1; i < len(cases); i++ {
		if got[i-1].watch <= got[i].watch || got[i-1].like < got[i].like || got[i-1].skip > got[i].skip {
			t.Errorf("%q should beat %q: %+v vs %+v", cases[i-1].name, cases[i].name, got[i-1], got[i])
		}
	}
	if got[0].watch < 0.8 || got[len(got)-1].watch > 0.2 {
		t.Errorf("best item watch %.3f (want > 0.8), worst %.3f (want < 0.2)", got[0].watch, got[len(got)-1].watch)
	}
}

func TestPassingInterestRaisesAppealWhileItLasts(t *testing.T) {
	w, u := lab()
	v := labVideo(w, 1, 0.6, false)
	before := w.Appeal(u, v)
	u.burst = 1
	during := w.Appeal(u, v)
	if during-before < 0.3 {
		t.Fatalf("appeal of the passing interest's category: %.3f before, %.3f during", before, during)
	}
	if bound := w.AppealBound(u, 1); bound < during {
		t.Fatalf("bound %.3f below an actual appeal %.3f", bound, during)
	}
}

func TestRespondAlwaysConsumesTheSameDraws(t *testing.T) {
	w, u := lab()
	a, b := RNG(4, 1), RNG(4, 1)
	w.Respond(u, labVideo(w, 0, 0.9, true), false, a)
	w.Respond(u, labVideo(w, 1, 0.1, false), true, b)
	if a.Uint64() != b.Uint64() {
		t.Fatal("responses to different videos consumed different numbers of draws")
	}
}

func TestEventsReportWhatTheUserDid(t *testing.T) {
	v := &Video{}
	v.Meta.ID, v.Meta.DurationMs = "v1", 10000
	end := testStart.Add(1500 * time.Microsecond)
	cases := []struct {
		name string
		r    Response
		want []event.Type
	}{
		{"swiped away", Response{Skip: true, WatchFraction: 0.1, WatchMs: 1000}, []event.Type{event.Skip}},
		{"watched half", Response{WatchFraction: 0.5, WatchMs: 5000}, []event.Type{event.Play}},
		{"loved it", Response{WatchFraction: 1, WatchMs: 10000, Complete: true, Like: true, Share: true, Follow: true},
			[]event.Type{event.Play, event.Complete, event.Like, event.Share, event.Follow}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			evs := c.r.Events("u1", v, "req-1", end)
			again := c.r.Events("u1", v, "req-1", end)
			if len(evs) != len(c.want) {
				t.Fatalf("got %d events, want types %v", len(evs), c.want)
			}
			ids := map[string]bool{}
			for i, ev := range evs {
				if ev.Type != c.want[i] || ev.UserID != "u1" || ev.VideoID != "v1" || ev.RequestID != "req-1" || ev.WatchMs != c.r.WatchMs {
					t.Errorf("event %d = %+v, want type %s for u1/v1/req-1 with watch_ms %d", i, ev, c.want[i], c.r.WatchMs)
				}
				if !ev.TS.Equal(end.Truncate(time.Millisecond)) {
					t.Errorf("event %d at %s, want %s", i, ev.TS, end)
				}
				if ids[ev.ID] || ev.ID != again[i].ID {
					t.Errorf("event ids must be distinct and stable: %s", ev.ID)
				}
				ids[ev.ID] = true
			}
		})
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func TestAppealBoundHolds(t *testing.T) {
	w, err := Generate(testConfig(2))
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range w.Users[:30] {
		for _, v := range w.Videos {
			if a, b := w.Appeal(u, v), w.AppealBound(u, v.Category); a > b+1e-12 || math.IsNaN(a) {
				t.Fatalf("appeal %.4f above its bound %.4f", a, b)
			}
		}
	}
}
