package filter

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"reelfeed/catalog"
	"reelfeed/event"
	"reelfeed/feature"
	"reelfeed/profile"
)

var now = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func vid(id string, mods ...func(*catalog.Video)) *catalog.Video {
	v := &catalog.Video{ID: id, UploaderID: "up-" + id, Title: "title " + id, Category: "cat",
		Kind: catalog.KindVideo, PublishedAt: now.Add(-time.Hour), Quality: 0.5}
	for _, m := range mods {
		m(v)
	}
	return v
}

func cands(vs ...*catalog.Video) []Candidate {
	out := make([]Candidate, len(vs))
	for i, v := range vs {
		out[i] = Candidate{Video: v, Branch: "hot"}
	}
	return out
}

func ids(cs []Candidate) []string {
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = c.Video.ID
	}
	return out
}

func newProfile() *profile.Profile {
	return &profile.Profile{UserID: "u1", Played: map[string]time.Time{}, Shown: map[string]time.Time{},
		Positive: map[string]time.Time{}}
}

func request(mods ...func(*Request)) *Request {
	r := &Request{UserID: "u1", Region: "de", Surface: "feed", Profile: newProfile(), Now: now}
	for _, m := range mods {
		m(r)
	}
	return r
}

// run applies f and checks the partition contract: survivors first in the
// original order, every input still present.
func run(t *testing.T, f Filter, req *Request, in []Candidate) (kept, removed []string) {
	t.Helper()
	before := ids(in)
	n, err := f.Apply(context.Background(), req, in)
	if err != nil {
		t.Fatalf("%s: %v", f.Name(), err)
	}
	kept, removed = ids(in[:n]), ids(in[n:])
	all := append(slices.Clone(kept), removed...)
	slices.Sort(all)
	slices.Sort(before)
	if !slices.Equal(all, before) {
		t.Fatalf("%s lost or invented candidates: %v → %v", f.Name(), before, all)
	}
	return kept, removed
}

func TestPredicateFilters(t *testing.T) {
	cat := catalog.New()
	live := vid("live")
	cat.Upsert(live)
	updated := vid("upd", func(v *catalog.Video) { v.Title = "new title" })
	cat.Upsert(updated)

	kind, err := NewKind(map[string][]catalog.Kind{"video": {catalog.KindMusic, catalog.KindImageSet}})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		filter Filter
		req    *Request
		in     []Candidate
		kept   []string
	}{
		{"deleted removes videos gone from the catalog", NewDeleted(cat), request(),
			cands(vid("gone"), live, vid("upd")), []string{"live", "upd"}},
		{"blacklist by video, tag and uploader", Blacklisted{},
			request(func(r *Request) { r.Blacklist = NewBlacklist([]string{"b1"}, []string{"Gore"}, []string{"up-b3"}) }),
			cands(vid("b1"), vid("b2", func(v *catalog.Video) { v.Tags = []string{"fun", "gore"} }), vid("b3"), vid("ok")),
			[]string{"ok"}},
		{"empty blacklist keeps all", Blacklisted{}, request(), cands(vid("a"), vid("b")), []string{"a", "b"}},
		{"region", Region{}, request(),
			cands(vid("us-only", func(v *catalog.Video) { v.Regions = []string{"us"} }),
				vid("de", func(v *catalog.Video) { v.Regions = []string{"us", "de"} }), vid("global")),
			[]string{"de", "global"}},
		{"unknown region allows all", Region{}, request(func(r *Request) { r.Region = "" }),
			cands(vid("us-only", func(v *catalog.Video) { v.Regions = []string{"us"} })), []string{"us-only"}},
		{"kind excluded on a video-only surface", kind, request(func(r *Request) { r.Surface = "video" }),
			cands(vid("m", func(v *catalog.Video) { v.Kind = catalog.KindMusic }),
				vid("i", func(v *catalog.Video) { v.Kind = catalog.KindImageSet }), vid("v")),
			[]string{"v"}},
		{"kind: main surface takes every kind", kind, request(),
			cands(vid("m", func(v *catalog.Video) { v.Kind = catalog.KindMusic }), vid("v")), []string{"m", "v"}},
		{"own upload", OwnUpload{}, request(),
			cands(vid("mine", func(v *catalog.Video) { v.UploaderID = "u1" }), vid("theirs")), []string{"theirs"}},
		{"played", Played{}, request(func(r *Request) { r.Profile.Played["p"] = now.Add(-time.Minute) }),
			cands(vid("p"), vid("q")), []string{"q"}},
		{"played, by key", Played{}, request(func(r *Request) {
			r.Profile.Played["p"] = now.Add(-time.Minute)
			r.PlayedKeys = keysOf(r.Profile.Played)
		}), cands(vid("p"), vid("q")), []string{"q"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			kept, _ := run(t, tc.filter, tc.req, tc.in)
			if !slices.Equal(kept, tc.kept) {
				t.Fatalf("kept %v, want %v", kept, tc.kept)
			}
		})
	}
}

func TestDeletedRefreshesMetadata(t *testing.T) {
	cat := catalog.New()
	stale := vid("v", func(v *catalog.Video) { v.Tags = []string{"fine"} })
	cat.Upsert(vid("v", func(v *catalog.Video) { v.Tags = []string{"gore"} }))
	in := cands(stale)
	req := request(func(r *Request) { r.Blacklist = NewBlacklist(nil, []string{"gore"}, nil) })
	n, _ := NewDeleted(cat).Apply(context.Background(), req, in)
	n, _ = Blacklisted{}.Apply(context.Background(), req, in[:n])
	if n != 0 {
		t.Fatal("blacklist judged the stale copy, not the current video")
	}
}

type servedMap map[string]time.Time

func (s servedMap) LastServed(id string) (time.Time, bool) { t, ok := s[id]; return t, ok }

func TestShownIsSoft(t *testing.T) {
	tests := []struct {
		name       string
		need       int
		shown      map[string]time.Time
		served     servedMap
		in         []string
		kept       []string
		readmitted []string
	}{
		{"removes shown while enough unseen remain", 2,
			map[string]time.Time{"a": now.Add(-time.Hour)}, nil,
			[]string{"a", "b", "c"}, []string{"b", "c"}, nil},
		{"recently served counts before impressions arrive", 2,
			nil, servedMap{"b": now.Add(-time.Second)},
			[]string{"a", "b", "c"}, []string{"a", "c"}, nil},
		{"readmits least recently shown when short", 3,
			map[string]time.Time{"a": now.Add(-time.Minute), "b": now.Add(-time.Hour)}, servedMap{"c": now.Add(-time.Second)},
			[]string{"a", "b", "c", "d"}, []string{"d", "b", "a"}, []string{"b", "a"}},
		{"served time wins over an older impression", 2,
			map[string]time.Time{"a": now.Add(-48 * time.Hour), "b": now.Add(-time.Hour)}, servedMap{"a": now},
			[]string{"a", "b"}, []string{"b", "a"}, []string{"b", "a"}},
		{"strict when need is 0", 0,
			map[string]time.Time{"a": now}, nil, []string{"a"}, []string{}, nil},
	}
	for _, tc := range tests {
		for _, withKeys := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/keys=%v", tc.name, withKeys), func(t *testing.T) {
				req := request(func(r *Request) {
					r.Need = tc.need
					for k, v := range tc.shown {
						r.Profile.Shown[k] = v
					}
					if tc.served != nil {
						r.Served = tc.served
					}
					if withKeys {
						r.ShownKeys = keysOf(tc.shown, tc.served)
					}
				})
				var vs []*catalog.Video
				for _, id := range tc.in {
					vs = append(vs, vid(id))
				}
				in := cands(vs...)
				n, _ := Shown{}.Apply(context.Background(), req, in)
				kept := ids(in[:n])
				if !slices.Equal(kept, tc.kept) {
					t.Fatalf("kept %v, want %v", kept, tc.kept)
				}
				var re []string
				for _, c := range in[:n] {
					if c.Readmitted {
						re = append(re, c.Video.ID)
					}
				}
				if !slices.Equal(re, tc.readmitted) {
					t.Fatalf("readmitted %v, want %v", re, tc.readmitted)
				}
			})
		}
	}
}

func TestNearDuplicate(t *testing.T) {
	f, err := NewNearDuplicate(0.6)
	if err != nil {
		t.Fatal(err)
	}
	same := func(up, title string, tags ...string) func(*catalog.Video) {
		return func(v *catalog.Video) { v.UploaderID, v.Title, v.Tags = up, title, tags }
	}
	tests := []struct {
		name string
		in   []*catalog.Video
		kept []string
	}{
		{"same uploader, same title modulo case and punctuation",
			[]*catalog.Video{vid("a", same("u", "My Cat!!")), vid("b", same("u", "my  cat")), vid("c", same("u", "my dog"))},
			[]string{"a", "c"}},
		{"same title, different uploaders are distinct",
			[]*catalog.Video{vid("a", same("u", "Cat")), vid("b", same("w", "cat"))}, []string{"a", "b"}},
		{"tag overlap above threshold",
			[]*catalog.Video{vid("a", same("u", "one", "x", "y", "z")), vid("b", same("u", "two", "x", "y", "z", "w")),
				vid("c", same("u", "three", "x", "q"))},
			[]string{"a", "c"}},
		{"empty titles and no tags are not evidence",
			[]*catalog.Video{vid("a", same("u", "")), vid("b", same("u", "!!"))}, []string{"a", "b"}},
		{"chains per uploader",
			[]*catalog.Video{vid("a", same("u", "1")), vid("b", same("v", "1")), vid("c", same("u", "2")),
				vid("d", same("u", "2")), vid("e", same("v", "1"))},
			[]string{"a", "b", "c"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			kept, _ := run(t, f, request(), cands(tc.in...))
			if !slices.Equal(kept, tc.kept) {
				t.Fatalf("kept %v, want %v", kept, tc.kept)
			}
		})
	}
	if _, err := NewNearDuplicate(0); err == nil {
		t.Fatal("threshold 0 accepted")
	}
}

func TestNewVideoQuota(t *testing.T) {
	ctx := context.Background()
	stats := feature.NewMemory(feature.DefaultConfig())
	defer stats.Close()
	var evs []event.Event
	for i := range 5 {
		evs = append(evs, event.Event{ID: fmt.Sprintf("e%d", i), UserID: "x", VideoID: "exposed", Type: event.Impression, TS: now.Add(-time.Minute)})
	}
	evs = append(evs, event.Event{ID: "f", UserID: "x", VideoID: "fresh", Type: event.Impression, TS: now.Add(-time.Minute)})
	if _, err := stats.Apply(ctx, evs); err != nil {
		t.Fatal(err)
	}
	f, err := NewNewVideoQuota(stats, "new", 5)
	if err != nil {
		t.Fatal(err)
	}
	in := []Candidate{
		{Video: vid("exposed"), Branch: "new"},
		{Video: vid("fresh"), Branch: "new"},
		{Video: vid("exposed2"), Branch: "new"},
	}
	in[2].Video.ID = "exposed" // same video reached through another branch keeps its place
	in[2].Branch = "tag"
	kept, removed := run(t, f, request(), in)
	if !slices.Equal(kept, []string{"fresh", "exposed"}) || !slices.Equal(removed, []string{"exposed"}) {
		t.Fatalf("kept %v removed %v", kept, removed)
	}
	if in[1].Branch != "tag" {
		t.Fatalf("the tag copy should survive, got %+v", in[:2])
	}
}

type failingStats struct{ feature.Store }

func (failingStats) Get(context.Context, []feature.Stats, []string, time.Time) ([]feature.Stats, error) {
	return nil, fmt.Errorf("redis down")
}

func TestNewVideoQuotaFailsOpen(t *testing.T) {
	f, _ := NewNewVideoQuota(failingStats{}, "new", 5)
	in := []Candidate{{Video: vid("a"), Branch: "new"}}
	n, err := f.Apply(context.Background(), request(), in)
	if err == nil || n != 1 {
		t.Fatalf("want fail-open with error, got n=%d err=%v", n, err)
	}
}

func BenchmarkChain800(b *testing.B) {
	cat := catalog.New()
	var vs []*catalog.Video
	for i := range 800 {
		v := vid(fmt.Sprint(i), func(v *catalog.Video) {
			v.UploaderID = fmt.Sprintf("up%d", i%300)
			v.Title = fmt.Sprintf("title %d", i)
			v.Tags = []string{fmt.Sprintf("t%d", i%50), fmt.Sprintf("t%d", i%13), "common"}
		})
		cat.Upsert(v)
		vs = append(vs, v)
	}
	nd, _ := NewNearDuplicate(0.8)
	kind, _ := NewKind(map[string][]catalog.Kind{"video": {catalog.KindMusic}})
	chain := []Filter{NewDeleted(cat), Blacklisted{}, Region{}, kind, OwnUpload{}, Played{}, Shown{}, nd}
	req := request(func(r *Request) {
		r.Need = 10
		r.Blacklist = NewBlacklist([]string{"5"}, []string{"t7"}, nil)
		for i := range 2000 {
			r.Profile.Played[fmt.Sprint(i*7)] = now
			r.Profile.Shown[fmt.Sprint(i*5)] = now
		}
	})
	base := cands(vs...)
	work := make([]Candidate, len(base))
	b.ReportAllocs()
	for b.Loop() {
		copy(work, base)
		n := len(work)
		for _, f := range chain {
			n, _ = f.Apply(context.Background(), req, work[:n])
		}
	}
}

// keysOf indexes the ids of every map given, as the feed does per request.
func keysOf[M ~map[string]time.Time](maps ...M) *catalog.IDSet {
	var set catalog.IDSet
	for _, m := range maps {
		for id := range m {
			set.Add(catalog.IDKey(id))
		}
	}
	return &set
}

// The signature bounds in NearDuplicate.similar only skip pairs the exact
// Jaccard would reject: on random tag sets the two always agree.
func TestNearDuplicateBoundsAgreeWithExactJaccard(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 9))
	randomTags := func() []string {
		n := 1 + rng.IntN(6)
		tags := make([]string, 0, n)
		for len(tags) < n {
			tag := fmt.Sprint("t", rng.IntN(12))
			if !slices.Contains(tags, tag) {
				tags = append(tags, tag)
			}
		}
		return tags
	}
	for _, threshold := range []float64{0.3, 0.5, 0.8, 1} {
		f, err := NewNearDuplicate(threshold)
		if err != nil {
			t.Fatal(err)
		}
		for i := range 5000 {
			a := vid(fmt.Sprint("a", i), func(v *catalog.Video) { v.Title = "x"; v.Tags = randomTags() })
			b := vid(fmt.Sprint("b", i), func(v *catalog.Video) { v.Title = "y"; v.Tags = randomTags() })
			if got, want := f.similar(a, b), tagJaccard(a.Tags, b.Tags) >= threshold; got != want {
				t.Fatalf("threshold %v, %v vs %v: similar %v, exact %v", threshold, a.Tags, b.Tags, got, want)
			}
		}
	}
}
