package feed

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"reelfeed/catalog"
	"reelfeed/event"
	"reelfeed/rank"
	"reelfeed/recall"
)

// checkPage asserts what every page must satisfy: the requested size, no
// repeats, nothing the user must not see, caps honoured.
func checkPage(t *testing.T, w *world, resp *Response, user string, count int) {
	t.Helper()
	if len(resp.Items) != count {
		t.Fatalf("page has %d items, want %d: %v", len(resp.Items), count, itemIDs(resp))
	}
	prof, err := w.profiles.Get(context.Background(), user, w.clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	byCat, byUploader, special := map[string]int{}, map[string]int{}, 0
	for _, it := range resp.Items {
		if seen[it.VideoID] {
			t.Fatalf("video %s served twice in one page", it.VideoID)
		}
		seen[it.VideoID] = true
		v, ok := w.cat.Get(it.VideoID)
		if !ok {
			t.Fatalf("deleted video %s served", it.VideoID)
		}
		if v.UploaderID == user {
			t.Fatalf("own upload %s served", it.VideoID)
		}
		if _, played := prof.Played[it.VideoID]; played {
			t.Fatalf("played video %s served", it.VideoID)
		}
		if it.Category != v.Category || it.UploaderID != v.UploaderID || it.Branch == "" {
			t.Fatalf("item metadata wrong: %+v", it)
		}
		byCat[v.Category]++
		byUploader[v.UploaderID]++
		if v.Kind != catalog.KindVideo {
			special++
		}
	}
	caps := DefaultConfig().Caps
	for c, n := range byCat {
		if n > capOf(caps.Category, count) {
			t.Fatalf("category %s has %d items, cap %d", c, n, capOf(caps.Category, count))
		}
	}
	for u, n := range byUploader {
		if n > capOf(caps.Uploader, count) {
			t.Fatalf("uploader %s has %d items, cap %d", u, n, capOf(caps.Uploader, count))
		}
	}
	if special > capOf(caps.Special, count) {
		t.Fatalf("%d special items, cap %d", special, capOf(caps.Special, count))
	}
}

func TestFeedNeverServesForbiddenVideos(t *testing.T) {
	w := newWorld(t, worldSpec{videos: 800, categories: 10, seed: 1})
	const user = "alice"
	// Alice uploads, plays some videos and likes a category; some videos
	// get deleted; some are blacklisted.
	for i := range 5 {
		v := &catalog.Video{ID: fmt.Sprintf("alice-%d", i), UploaderID: user, Title: fmt.Sprintf("mine %d", i),
			Category: "cooking", Tags: []string{"cooking-t1"}, Quality: 1, PublishedAt: w.clock.Now().Add(-time.Hour)}
		v.Normalize(w.clock.Now())
		w.cat.Upsert(v)
	}
	liked := w.videosOf("cooking", 12)
	w.engage(t, user, liked...)
	var skips []event.Event
	for _, v := range w.videosOf("sports", 6) {
		skips = append(skips, event.Event{UserID: user, VideoID: v.ID, Type: event.Skip})
	}
	w.apply(t, skips...)
	deleted := w.videosOf("cooking", 30)[20:25]
	for _, v := range deleted {
		w.cat.Delete(v.ID)
	}
	blocked := w.videosOf("music", 3)
	state := w.knobs.Get()
	state.Blacklist.Videos = []string{blocked[0].ID}
	state.Blacklist.Uploaders = []string{blocked[1].UploaderID}
	state.Blacklist.Tags = []string{"cooking-t3"}
	if err := w.knobs.Set(state); err != nil {
		t.Fatal(err)
	}
	w.buildSources(t) // the hot lists may still hold deleted videos; rebuilding is not required, only realistic

	svc := w.service(t, testConfig())
	for page := range 4 {
		resp := feedOK(t, svc, Request{UserID: user, Count: 20, Region: "de"})
		checkPage(t, w, resp, user, 20)
		for _, it := range resp.Items {
			v, _ := w.cat.Get(it.VideoID)
			if it.VideoID == blocked[0].ID || v.UploaderID == blocked[1].UploaderID || slices.Contains(v.Tags, "cooking-t3") {
				t.Fatalf("page %d: blacklisted video %s served", page, it.VideoID)
			}
			if !v.AllowedIn("de") {
				t.Fatalf("page %d: video %s not allowed in de", page, it.VideoID)
			}
			if !strings.HasPrefix(it.PlayURL, "https://eu.cdn.test/v/") {
				t.Fatalf("play_url %q not on the de edge", it.PlayURL)
			}
		}
		w.deliver(t)
	}
}

func TestPagesDoNotRepeat(t *testing.T) {
	w := newWorld(t, worldSpec{videos: 600, categories: 8, seed: 2})
	svc := w.service(t, testConfig())
	const user = "bob"
	w.engage(t, user, w.videosOf("travel", 5)...)

	// Back to back: the impressions have not reached the profile yet.
	first := feedOK(t, svc, Request{UserID: user, Count: 15})
	second := feedOK(t, svc, Request{UserID: user, Count: 15})
	checkPage(t, w, first, user, 15)
	checkPage(t, w, second, user, 15)
	for _, id := range itemIDs(second) {
		if slices.Contains(itemIDs(first), id) {
			t.Fatalf("second page repeats %s from the first", id)
		}
	}

	// Another replica (no shared memory) learns what was shown from the
	// profile once impressions arrive.
	w.deliver(t)
	other := w.service(t, testConfig())
	third := feedOK(t, other, Request{UserID: user, Count: 15})
	checkPage(t, w, third, user, 15)
	for _, id := range itemIDs(third) {
		if slices.Contains(itemIDs(first), id) || slices.Contains(itemIDs(second), id) {
			t.Fatalf("third page (other replica) repeats %s", id)
		}
	}
}

func TestUnknownUserGetsFullColdStartPage(t *testing.T) {
	w := newWorld(t, worldSpec{videos: 500, categories: 10, seed: 3})
	svc := w.service(t, testConfig())
	resp := feedOK(t, svc, Request{UserID: "never-seen", Count: 10})
	checkPage(t, w, resp, "never-seen", 10)
	if resp.Segment != "new" {
		t.Fatalf("segment %q, want new", resp.Segment)
	}
	// The new-user plan: start 4, hot 4, explore 1, new 1.
	byBranch := map[string]int{}
	cats := map[string]bool{}
	for _, it := range resp.Items {
		byBranch[it.Branch]++
		cats[it.Category] = true
	}
	want := map[string]int{"start": 4, "hot": 4, "explore": 1, "new": 1}
	for b, n := range want {
		if byBranch[b] != n {
			t.Fatalf("branch mix %v, want the new-user slot plan %v", byBranch, want)
		}
	}
	if len(cats) < 4 {
		t.Fatalf("cold-start page covers only %d categories: %v", len(cats), cats)
	}
}

func TestInterestDominatesButDoesNotMonopolise(t *testing.T) {
	w := newWorld(t, worldSpec{videos: 1200, categories: 12, seed: 4})
	svc := w.service(t, testConfig())
	const user = "carol"
	before := feedOK(t, svc, Request{UserID: user, Count: 10})
	cookingBefore := 0
	for _, it := range before.Items {
		if it.Category == "cooking" {
			cookingBefore++
		}
	}
	w.deliver(t)
	w.engage(t, user, w.videosOf("cooking", 25)...)

	resp := feedOK(t, svc, Request{UserID: user, Count: 10, Debug: true})
	checkPage(t, w, resp, user, 10)
	if resp.Segment != "active" {
		t.Fatalf("segment %q after 25 completes and likes, want active", resp.Segment)
	}
	byCat := map[string]int{}
	for _, it := range resp.Items {
		byCat[it.Category]++
	}
	cooking := byCat["cooking"]
	for c, n := range byCat {
		if c != "cooking" && n >= cooking {
			t.Fatalf("cooking (%d) does not dominate: %v", cooking, byCat)
		}
	}
	if cooking < 4 || cooking <= cookingBefore {
		t.Fatalf("cooking has %d of 10 (before the likes: %d): %v", cooking, cookingBefore, byCat)
	}
	if cooking == 10 || len(byCat) < 3 {
		t.Fatalf("one interest took the whole page: %v", byCat)
	}
}

// failingSource always errors; slowSource ignores its budget.
type failingSource struct{}

func (failingSource) Name() string { return "broken" }
func (failingSource) Recall(context.Context, *recall.Request, int) ([]recall.Candidate, error) {
	return nil, errors.New("index unavailable")
}

type slowSource struct {
	cat   *catalog.Catalog
	delay time.Duration
}

func (slowSource) Name() string { return "slow" }
func (s slowSource) Recall(_ context.Context, _ *recall.Request, quota int) ([]recall.Candidate, error) {
	time.Sleep(s.delay) // deliberately ignores ctx: the pipeline must not wait for it
	var out []recall.Candidate
	for _, v := range s.cat.SearchVideos(catalog.Query{Limit: quota}) {
		out = append(out, recall.Candidate{Video: v, Branch: "slow", Score: 1})
	}
	return out, nil
}

func TestFailingAndSlowBranchesAreAbsorbed(t *testing.T) {
	w := newWorld(t, worldSpec{videos: 400, categories: 8, seed: 5})
	cfg := testConfig()
	cfg.Branches["broken"] = BranchConfig{Quota: 50, Budget: 50 * time.Millisecond}
	cfg.Branches["slow"] = BranchConfig{Quota: 50, Budget: 30 * time.Millisecond}
	svc := w.service(t, cfg, failingSource{}, slowSource{cat: w.cat, delay: 400 * time.Millisecond})

	start := time.Now()
	resp := feedOK(t, svc, Request{UserID: "dave", Count: 10, Debug: true})
	took := time.Since(start)
	checkPage(t, w, resp, "dave", 10)
	if took > 350*time.Millisecond {
		t.Fatalf("request waited for the slow branch: %v", took)
	}
	errs := map[string]string{}
	for _, b := range resp.Debug.Branches {
		errs[b.Branch] = b.Error
	}
	if !strings.HasPrefix(errs["broken"], "error:") || !strings.HasPrefix(errs["slow"], "timeout:") {
		t.Fatalf("debug does not report the dropped branches: %v", errs)
	}
	for _, it := range resp.Items {
		if it.Branch == "slow" || it.Branch == "broken" {
			t.Fatalf("item from a dropped branch: %+v", it)
		}
	}
	if n := counterValue(t, svc.metrics.branchFailures["broken"][0]); n != 1 {
		t.Fatalf("broken branch fail-open count %v, want 1", n)
	}
	if n := counterValue(t, svc.metrics.branchFailures["slow"][1]); n != 1 {
		t.Fatalf("slow branch timeout count %v, want 1", n)
	}
}

// inlineSlowSource answers from memory (recall.InProcess) but too slowly.
type inlineSlowSource struct{ slowSource }

func (inlineSlowSource) Name() string    { return "inline-slow" }
func (inlineSlowSource) InProcess() bool { return true }

// In-process branches run on the request's goroutine; one that overruns
// its budget is still dropped and counted as a timeout, like any branch.
func TestInProcessBranchesRunInlineWithinTheirBudget(t *testing.T) {
	w := newWorld(t, worldSpec{videos: 400, categories: 8, seed: 5})
	cfg := testConfig()
	cfg.Branches["inline-slow"] = BranchConfig{Quota: 50, Budget: 5 * time.Millisecond}
	svc := w.service(t, cfg, inlineSlowSource{slowSource{cat: w.cat, delay: 20 * time.Millisecond}})

	resp := feedOK(t, svc, Request{UserID: "dave", Count: 10, Debug: true})
	checkPage(t, w, resp, "dave", 10)
	inline := map[string]bool{}
	for _, b := range resp.Debug.Branches {
		inline[b.Branch] = b.Inline
		if b.Branch == "inline-slow" && !strings.HasPrefix(b.Error, "timeout:") {
			t.Fatalf("late in-process branch not dropped as a timeout: %+v", b)
		}
	}
	if !inline["inline-slow"] || !inline["explore"] {
		t.Fatalf("in-process branches must run inline: %v", inline)
	}
	for _, it := range resp.Items {
		if it.Branch == "inline-slow" {
			t.Fatalf("item from a dropped branch: %+v", it)
		}
	}
	if n := counterValue(t, svc.metrics.branchFailures["inline-slow"][1]); n != 1 {
		t.Fatalf("timeout count %v, want 1", n)
	}
}

func TestBlacklistChangeAppliesToNextRequest(t *testing.T) {
	w := newWorld(t, worldSpec{videos: 400, categories: 8, seed: 6})
	svc := w.service(t, testConfig())
	admin := httptest.NewServer(AdminHandler(w.knobs, func(_ context.Context, s KnobState) error { return w.knobs.Set(s) }))
	defer admin.Close()

	// Two new users in the same region get the same start page.
	first := feedOK(t, svc, Request{UserID: "erin", Count: 10})
	top := first.Items[0]
	put := func(path string) {
		req, _ := http.NewRequest(http.MethodPut, admin.URL+path, nil)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusOK {
			t.Fatalf("PUT %s: %d", path, res.StatusCode)
		}
	}
	put("/blacklist/video/" + top.VideoID)
	put("/blacklist/uploader/" + first.Items[1].UploaderID)

	next := feedOK(t, svc, Request{UserID: "frank", Count: 10})
	checkPage(t, w, next, "frank", 10)
	for _, it := range next.Items {
		if it.VideoID == top.VideoID || it.UploaderID == first.Items[1].UploaderID {
			t.Fatalf("blacklisted item served after the change: %+v", it)
		}
	}
	// Control: without the change frank would have seen them.
	state := w.knobs.Get()
	state.Blacklist = BlacklistState{}
	if err := w.knobs.Set(state); err != nil {
		t.Fatal(err)
	}
	control := feedOK(t, svc, Request{UserID: "grace", Count: 10})
	if !slices.Contains(itemIDs(control), top.VideoID) {
		t.Fatalf("control page lacks %s: the test proves nothing (%v)", top.VideoID, itemIDs(control))
	}
}

func TestHeavyUserSeesUnseenBeforeShown(t *testing.T) {
	w := newWorld(t, worldSpec{videos: 160, categories: 8, seed: 7})
	svc := w.service(t, testConfig())
	const user = "heidi"
	// Heidi was shown every video but 12 (impressions in her profile).
	var unseen []string
	var shown []event.Event
	servable := 0
	for i, v := range w.videos {
		if v.Kind == catalog.KindVideo && len(v.Regions) == 0 {
			servable++
			if servable%10 == 5 && len(unseen) < 12 {
				unseen = append(unseen, v.ID)
				continue
			}
		}
		shown = append(shown, event.Event{UserID: user, VideoID: v.ID, Type: event.Impression,
			TS: w.clock.Now().Add(-time.Duration(i) * time.Minute)})
	}
	w.apply(t, shown...)
	if len(unseen) != 12 {
		t.Fatalf("world too small: %d unseen", len(unseen))
	}
	resp := feedOK(t, svc, Request{UserID: user, Count: 10, Debug: true})
	checkPage(t, w, resp, user, 10)
	for _, it := range resp.Items {
		if !slices.Contains(unseen, it.VideoID) {
			t.Fatalf("served already shown %s while unseen ones remain (%v)", it.VideoID, itemIDs(resp))
		}
	}
	// Next page: 2 unseen left, so 8 already shown ones are readmitted, the
	// least recently shown first, after the unseen ones.
	w.deliver(t)
	resp = feedOK(t, svc, Request{UserID: user, Count: 10, Debug: true})
	checkPage(t, w, resp, user, 10)
	for i, it := range resp.Items {
		isUnseen := slices.Contains(unseen, it.VideoID)
		if i < 2 && !isUnseen {
			t.Fatalf("item %d is already shown while unseen remain: %v", i, itemIDs(resp))
		}
		if i >= 2 && resp.Debug.Items[i].Via != viaReadmitted {
			t.Fatalf("item %d via %q, want readmitted", i, resp.Debug.Items[i].Via)
		}
	}
}

// A user who was shown every video of the catalog still gets a full page
// when no recall branch or hot list offers anything: the catalog scan's
// already-shown videos are readmitted, least recently shown first.
func TestUserShownEverythingGetsAFullPage(t *testing.T) {
	w := newWorld(t, worldSpec{videos: 120, categories: 6, seed: 8})
	cfg := testConfig()
	for name := range cfg.Branches {
		cfg.Branches[name] = BranchConfig{Quota: 0, Budget: time.Second}
	}
	cfg.Backfill.Quota = 0
	svc := w.service(t, cfg)
	const user = "ivan"
	var shown []event.Event
	for i, v := range w.videos {
		shown = append(shown, event.Event{UserID: user, VideoID: v.ID, Type: event.Impression,
			TS: w.clock.Now().Add(-time.Duration(len(w.videos)-i) * time.Minute)})
	}
	w.apply(t, shown...)
	resp := feedOK(t, svc, Request{UserID: user, Count: 10, Debug: true})
	checkPage(t, w, resp, user, 10)
	for i := range resp.Items {
		if via := resp.Debug.Items[i].Via; via != viaReadmitted {
			t.Fatalf("item %d via %q, want readmitted", i, via)
		}
	}
}

func TestSurfaceExcludesKinds(t *testing.T) {
	w := newWorld(t, worldSpec{videos: 400, categories: 8, seed: 8})
	svc := w.service(t, testConfig())
	for range 3 {
		resp := feedOK(t, svc, Request{UserID: "ivan", Count: 20, Surface: "video"})
		for _, it := range resp.Items {
			if v, _ := w.cat.Get(it.VideoID); v.Kind != catalog.KindVideo {
				t.Fatalf("%s kind %s served on the video surface", it.VideoID, v.Kind)
			}
		}
	}
	if _, err := svc.Feed(context.Background(), Request{UserID: "ivan", Surface: "tv"}); err == nil {
		t.Fatal("unknown surface accepted")
	}
}

func TestInvalidRequests(t *testing.T) {
	w := newWorld(t, worldSpec{videos: 50, categories: 4, seed: 9})
	svc := w.service(t, testConfig())
	tests := []struct {
		req   Request
		field string
	}{
		{Request{UserID: ""}, "user_id"},
		{Request{UserID: "a b"}, "user_id"},
		{Request{UserID: "u", Count: 51}, "count"},
		{Request{UserID: "u", Count: -1}, "count"},
		{Request{UserID: "u", RequestID: "has space"}, "request_id"},
	}
	for _, tc := range tests {
		_, err := svc.Feed(context.Background(), tc.req)
		var ve *ValidationError
		if !errors.As(err, &ve) || ve.Fields[tc.field] == "" {
			t.Errorf("%+v: want a validation error on %s, got %v", tc.req, tc.field, err)
		}
	}
}

func TestImpressionsAndDebug(t *testing.T) {
	w := newWorld(t, worldSpec{videos: 400, categories: 8, seed: 10})
	cfg := testConfig()
	svc, err := New(Deps{
		Catalog: w.cat, Profiles: w.profiles, Features: w.features, Sources: w.sources, Backfill: w.hot,
		Scorer: w.scorer, Knobs: w.knobs, Impressions: w.sink, Metrics: w.reg, Now: w.clock.Now,
		LogFeatures: func(dst []json.RawMessage, q *rank.Query, items []*rank.Item) []json.RawMessage {
			for _, it := range items {
				dst = append(dst, json.RawMessage(fmt.Sprintf(`{"v":%q,"branch":%q}`, it.Video.ID, it.Branch)))
			}
			return dst
		},
	}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	w.engage(t, "judy", w.videosOf("pets", 3)...)
	resp := feedOK(t, svc, Request{UserID: "judy", Count: 10, Debug: true, RequestID: "req-1", Region: "us"})
	evs := w.sink.take()
	if len(evs) != len(resp.Items) {
		t.Fatalf("%d impressions for %d items", len(evs), len(resp.Items))
	}
	for i, e := range evs {
		it := resp.Items[i]
		if e.Type != event.Impression || e.UserID != "judy" || e.VideoID != it.VideoID || e.RequestID != "req-1" ||
			e.Branch != it.Branch || e.TS != w.clock.Now() || e.ID == "" || e.Category != it.Category {
			t.Fatalf("impression %d wrong: %+v for %+v", i, e, it)
		}
		if !strings.Contains(string(e.Features), it.VideoID) {
			t.Fatalf("impression features not from the hook: %s", e.Features)
		}
	}
	if resp.Items[0].PlayURL != "https://cdn.test/v/"+resp.Items[0].VideoID {
		t.Fatalf("play_url %q not on the default edge", resp.Items[0].PlayURL)
	}

	d := resp.Debug
	var stages []string
	for _, s := range d.Stages {
		stages = append(stages, s.Stage)
	}
	if !slices.Equal(stages, stageNames[:]) {
		t.Fatalf("debug stages %v", stages)
	}
	if d.Stages[1].Out == 0 || d.Stages[2].In != d.Stages[1].Out {
		t.Fatalf("stage counts inconsistent: %+v", d.Stages)
	}
	if len(d.Filters) < len(svc.filters) || len(d.Branches) < len(w.sources) {
		t.Fatalf("debug lacks filters or branches: %d filters, %d branches", len(d.Filters), len(d.Branches))
	}
	if len(d.Items) != len(resp.Items) {
		t.Fatalf("%d debug items for %d items", len(d.Items), len(resp.Items))
	}
	for _, it := range d.Items {
		if len(it.ProposedBy) == 0 && it.Via != viaBackfillCat && it.Via != viaBackfillHot {
			t.Fatalf("item %s: no proposing branch", it.VideoID)
		}
		if it.Parts["ctr"] == 0 || it.Features.CTR == 0 || len(it.Filters) != len(svc.filters) {
			t.Fatalf("item %s not explained: %+v", it.VideoID, it)
		}
	}
	// The whole response marshals in the API's shape.
	b, _ := json.Marshal(resp)
	var shape map[string]any
	_ = json.Unmarshal(b, &shape)
	for _, k := range []string{"request_id", "user_id", "items", "debug", "segment", "variant"} {
		if _, ok := shape[k]; !ok {
			t.Fatalf("response JSON lacks %q: %s", k, b)
		}
	}
	item := shape["items"].([]any)[0].(map[string]any)
	for _, k := range []string{"video_id", "branch", "score", "play_url", "category", "uploader_id"} {
		if _, ok := item[k]; !ok {
			t.Fatalf("item JSON lacks %q", k)
		}
	}
}

func TestExperimentOverridesQuotaAndSlots(t *testing.T) {
	w := newWorld(t, worldSpec{videos: 400, categories: 8, seed: 11})
	state := w.knobs.Get()
	state.Experiments = map[string]Experiment{
		"nostart": {Variants: []Variant{{Name: "on", Traffic: 1, Params: map[string]float64{
			"quota.start": 0, "slots.new.hot": 9, "slots.new.start": 0, "formula.quality": 3,
		}}}},
	}
	if err := w.knobs.Set(state); err != nil {
		t.Fatal(err)
	}
	svc := w.service(t, testConfig())
	resp := feedOK(t, svc, Request{UserID: "kim", Count: 10, Debug: true})
	checkPage(t, w, resp, "kim", 10)
	if resp.Variant != "nostart:on" {
		t.Fatalf("variant %q", resp.Variant)
	}
	for _, it := range resp.Items {
		if it.Branch == "start" {
			t.Fatalf("start branch served with quota 0: %v", itemIDs(resp))
		}
	}
	for _, b := range resp.Debug.Branches {
		if b.Branch == "start" {
			t.Fatalf("start branch ran with quota 0")
		}
	}
	if q := resp.Debug.Items[0].Parts["quality"]; q < 3*0.1 {
		t.Fatalf("formula weight override not applied: quality part %v", q)
	}
}

func TestScorerFailureFallsBackToQuality(t *testing.T) {
	w := newWorld(t, worldSpec{videos: 300, categories: 6, seed: 12})
	w.scorer = brokenScorer{}
	svc := w.service(t, testConfig())
	resp := feedOK(t, svc, Request{UserID: "leo", Count: 10, Debug: true})
	checkPage(t, w, resp, "leo", 10)
	if len(resp.Debug.Notes) == 0 {
		t.Fatal("fallback not noted in debug")
	}
}

type brokenScorer struct{}

func (brokenScorer) Name() string { return "broken" }
func (brokenScorer) Score(context.Context, *rank.Query, []rank.Item) error {
	return errors.New("model not loaded")
}

func counterValue(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

func TestConcurrentFeedsWhileKnobsChange(t *testing.T) {
	w := newWorld(t, worldSpec{videos: 400, categories: 8, seed: 13})
	svc := w.service(t, testConfig())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 50 {
			s := w.knobs.Get()
			s.Blacklist.Videos = []string{w.videos[i].ID}
			s.Boosts.Category = map[string]float64{categories[i%8]: 1.5}
			if err := w.knobs.Set(s); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	errs := make(chan error, 4)
	for g := range 4 {
		go func() {
			for i := range 15 {
				user := fmt.Sprintf("user-%d-%d", g, i%3)
				resp, err := svc.Feed(context.Background(), Request{UserID: user, Count: 10, Debug: i%2 == 0})
				if err == nil && len(resp.Items) != 10 {
					err = fmt.Errorf("%s got %d items", user, len(resp.Items))
				}
				if err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	for range 4 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	<-done
}

// lateSeenSource answers after its budget, and then still reads its
// request's seen sets, as a network branch ignoring its context would.
type lateSeenSource struct {
	delay  time.Duration
	played chan int // PlayedKeys.Len() when called, then after the delay
}

func (lateSeenSource) Name() string { return "late" }
func (s lateSeenSource) Recall(_ context.Context, req *recall.Request, _ int) ([]recall.Candidate, error) {
	before := req.PlayedKeys.Len()
	time.Sleep(s.delay)
	s.played <- before
	s.played <- req.PlayedKeys.Len()
	return nil, nil
}

// The request's buffers are pooled; the ones a late branch still holds must
// not be handed to the next request.
func TestAbandonedBranchKeepsItsRequestsSeenSets(t *testing.T) {
	w := newWorld(t, worldSpec{videos: 400, categories: 8, seed: 5})
	cfg := testConfig()
	cfg.Branches["late"] = BranchConfig{Quota: 10, Budget: 5 * time.Millisecond}
	late := lateSeenSource{delay: 150 * time.Millisecond, played: make(chan int, 2)}
	svc := w.service(t, cfg, late)
	w.engage(t, "erin", w.videos[:25]...)

	feedOK(t, svc, Request{UserID: "erin", Count: 10}) // returns without the late branch
	// Other users' requests meanwhile: a reused buffer would now hold
	// their seen sets (none played).
	for i := range 20 {
		feedOK(t, svc, Request{UserID: fmt.Sprintf("other-%d", i), Count: 10})
	}
	before, after := <-late.played, <-late.played
	if before != 25 || after != before {
		t.Fatalf("the late branch saw %d played videos when called and %d after the request ended; want 25 both times", before, after)
	}
	for range 20 { // the other requests' late branches, each its own
		if b, a := <-late.played, <-late.played; b != 0 || a != 0 {
			t.Fatalf("another user's late branch saw %d then %d played videos, want 0", b, a)
		}
	}
}
