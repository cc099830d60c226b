package recall_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"reelfeed/catalog"
	"reelfeed/profile"
	"reelfeed/recall"
)

var brNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// brVideo builds a catalog video for branch tests.
func brVideo(id, category, uploader string, quality float64, tags ...string) *catalog.Video {
	v := &catalog.Video{ID: id, UploaderID: uploader, Title: "t " + id, Category: category, Tags: tags,
		Quality: quality, PublishedAt: brNow.Add(-48 * time.Hour)}
	v.Normalize(brNow)
	return v
}

func brProfile(user string) *profile.Profile {
	in := func() profile.Interests {
		return profile.Interests{Tags: map[string]float64{}, Categories: map[string]float64{}, Uploaders: map[string]float64{}}
	}
	return &profile.Profile{UserID: user, ShortTerm: in(), LongTerm: in(),
		Played: map[string]time.Time{}, Positive: map[string]time.Time{}, Shown: map[string]time.Time{}}
}

func brRequest(p *profile.Profile) *recall.Request {
	return &recall.Request{UserID: p.UserID, Profile: p, Segment: recall.SegmentActive, Now: brNow}
}

// brPetCatalog: 60 cat videos, 60 dog videos, 60 car videos, quality
// decreasing with the index.
func brPetCatalog() *catalog.Catalog {
	cat := catalog.New()
	for i := range 60 {
		q := 1 - float64(i)/100
		cat.Upsert(brVideo(fmt.Sprintf("cat%02d", i), "pets", fmt.Sprintf("catlady%d", i%6), q, "cats"))
		cat.Upsert(brVideo(fmt.Sprintf("dog%02d", i), "pets", fmt.Sprintf("dogman%d", i%6), q, "dogs"))
		cat.Upsert(brVideo(fmt.Sprintf("car%02d", i), "cars", fmt.Sprintf("racer%d", i%6), q, "cars"))
	}
	return cat
}

func brIDs(cs []recall.Candidate) []string {
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = c.Video.ID
	}
	return out
}

func countPrefix(ids []string, prefix string) int {
	n := 0
	for _, id := range ids {
		if len(id) >= len(prefix) && id[:len(prefix)] == prefix {
			n++
		}
	}
	return n
}

func TestTagFollowsWeightedInterests(t *testing.T) {
	cat := brPetCatalog()
	tag, err := recall.NewTag(cat, cat, recall.DefaultTagConfig())
	if err != nil {
		t.Fatal(err)
	}
	p := brProfile("u")
	p.ShortTerm.Tags["cats"] = 9 // watching cats right now
	p.LongTerm.Tags["cats"] = 2
	p.LongTerm.Tags["dogs"] = 3 // a steady, weaker interest
	p.LongTerm.Tags["cars"] = -5
	p.Played["cat00"] = brNow
	p.Shown["cat01"] = brNow
	own := brVideo("mine", "pets", "u", 1, "cats")
	cat.Upsert(own)

	got, err := tag.Recall(context.Background(), brRequest(p), 40)
	if err != nil {
		t.Fatal(err)
	}
	ids := brIDs(got)
	if len(got) != 40 {
		t.Fatalf("got %d candidates, want the quota 40", len(got))
	}
	cats, dogs := countPrefix(ids, "cat"), countPrefix(ids, "dog")
	if cats <= dogs || dogs == 0 {
		t.Fatalf("cats %d, dogs %d: the stronger interest should lead, the weaker still appear", cats, dogs)
	}
	if countPrefix(ids, "car") > 0 {
		t.Fatal("a disliked tag was recalled")
	}
	for _, id := range []string{"cat00", "cat01", "mine"} {
		if slices.Contains(ids, id) {
			t.Fatalf("%s recalled: played, shown or own", id)
		}
	}
	for i, c := range got {
		if c.Branch != "tag" || (i > 0 && c.Score > got[i-1].Score) {
			t.Fatalf("candidate %d wrong branch or order: %+v", i, c)
		}
	}
}

func TestTagWidensPastSeenVideos(t *testing.T) {
	cat := brPetCatalog()
	tag, _ := recall.NewTag(cat, cat, recall.DefaultTagConfig())
	p := brProfile("u")
	p.LongTerm.Tags["cats"] = 1
	for i := range 45 { // the 45 best cat videos were already shown
		p.Shown[fmt.Sprintf("cat%02d", i)] = brNow
	}
	got, err := tag.Recall(context.Background(), brRequest(p), 10)
	if err != nil {
		t.Fatal(err)
	}
	if n := countPrefix(brIDs(got), "cat"); n != 10 {
		t.Fatalf("got %d unseen cat videos, want 10: %v", n, brIDs(got))
	}
}

func TestTagNewUserAndRegion(t *testing.T) {
	cat := brPetCatalog()
	us := brVideo("usonly", "pets", "x", 1, "cats")
	us.Regions = []string{"us"}
	cat.Upsert(us)
	tag, _ := recall.NewTag(cat, cat, recall.DefaultTagConfig())
	got, err := tag.Recall(context.Background(), brRequest(brProfile("nobody")), 20)
	if err != nil || len(got) != 0 {
		t.Fatalf("new user: %v %v", brIDs(got), err)
	}
	p := brProfile("u")
	p.ShortTerm.Tags["cats"] = 1
	req := brRequest(p)
	req.Region = "de"
	got, _ = tag.Recall(context.Background(), req, 80)
	if slices.Contains(brIDs(got), "usonly") {
		t.Fatal("video not allowed in de recalled")
	}
}

// idRetriever is a remote-style retriever: ids only, possibly stale.
type idRetriever struct {
	cat   *catalog.Catalog
	extra []string
	err   error
}

func (r idRetriever) Name() string { return "remote" }
func (r idRetriever) Search(ctx context.Context, q catalog.Query) ([]string, error) {
	if r.err != nil {
		return nil, r.err
	}
	ids, err := r.cat.Search(ctx, q)
	return append(r.extra, ids...), err
}

func TestTagThroughRemoteRetriever(t *testing.T) {
	cat := brPetCatalog()
	p := brProfile("u")
	p.ShortTerm.Tags["cats"] = 1
	p.ShortTerm.Categories["cars"] = 1
	tag, _ := recall.NewTag(cat, idRetriever{cat: cat, extra: []string{"deleted-in-catalog"}}, recall.DefaultTagConfig())
	got, err := tag.Recall(context.Background(), brRequest(p), 30)
	if err != nil {
		t.Fatal(err)
	}
	ids := brIDs(got)
	if len(got) != 30 || slices.Contains(ids, "deleted-in-catalog") || countPrefix(ids, "car") == 0 {
		t.Fatalf("remote retrieval not mapped through the catalog: %v", ids)
	}
	broken, _ := recall.NewTag(cat, idRetriever{err: errors.New("es down")}, recall.DefaultTagConfig())
	if _, err := broken.Recall(context.Background(), brRequest(p), 30); err == nil {
		t.Fatal("retriever error swallowed")
	}
}

func TestNewTagRejectsBadConfig(t *testing.T) {
	cfg := recall.DefaultTagConfig()
	cfg.MaxTags, cfg.MaxCategories = 0, 0
	if _, err := recall.NewTag(catalog.New(), nil, cfg); err == nil {
		t.Fatal("config with no interests accepted")
	}
}

func BenchmarkTagRecall(b *testing.B) {
	cat := scanBenchCatalog()
	tag, _ := recall.NewTag(cat, cat, recall.DefaultTagConfig())
	req := brRequest(benchTagProfile())
	b.ReportAllocs()
	for b.Loop() {
		if _, err := tag.Recall(context.Background(), req, 200); err != nil {
			b.Fatal(err)
		}
	}
}
