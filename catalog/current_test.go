package catalog

import (
	"fmt"
	"testing"
	"time"
	"unsafe"
)

func TestCurrentFollowsUpdatesDeletesAndCompaction(t *testing.T) {
	c := New()
	old := &Video{ID: "v", UploaderID: "u", Category: "c", Title: "old"}
	c.Upsert(old)
	kept := &Video{ID: "kept", UploaderID: "u", Category: "c"}
	c.Upsert(kept)
	gone := &Video{ID: "gone", UploaderID: "u", Category: "c"}
	c.Upsert(gone)
	updated := &Video{ID: "v", UploaderID: "u", Category: "c", Title: "new"}
	c.Upsert(updated)
	c.Delete("gone")
	stranger := &Video{ID: "kept"} // never upserted: resolved by id

	vs := []*Video{old, kept, gone, nil, stranger, {ID: "unknown"}}
	c.Current(vs)
	want := []*Video{updated, kept, nil, nil, kept, nil}
	for i := range want {
		if vs[i] != want[i] {
			t.Fatalf("entry %d: got %+v, want %+v", i, vs[i], want[i])
		}
	}

	// Compaction moves every slot: pointers still resolve.
	for i := range 3000 {
		c.Upsert(&Video{ID: fmt.Sprint("filler", i), UploaderID: "u", Category: "c"})
		c.Delete(fmt.Sprint("filler", i))
	}
	vs = []*Video{kept, updated, old}
	c.Current(vs)
	if vs[0] != kept || vs[1] != updated || vs[2] != updated {
		t.Fatalf("after compaction: %v", vs)
	}
}

func TestIndexedVideosShareTheirStrings(t *testing.T) {
	c := New()
	a := &Video{ID: "a", UploaderID: string([]byte("up")), Category: string([]byte("pets")), Tags: []string{string([]byte("cat"))}}
	b := &Video{ID: "b", UploaderID: string([]byte("up")), Category: string([]byte("pets")), Tags: []string{string([]byte("cat"))}}
	c.Upsert(a)
	c.Upsert(b)
	same := func(x, y string) bool { return x == y && unsafe.StringData(x) == unsafe.StringData(y) }
	if !same(a.UploaderID, b.UploaderID) || !same(a.Category, b.Category) || !same(a.Tags[0], b.Tags[0]) {
		t.Fatal("equal tags, categories and uploaders must share one copy once indexed")
	}
	if a.Key() != IDKey("a") {
		t.Fatal("an indexed video's key is its id's")
	}
}

func TestDerivedKeysMatchTheirFields(t *testing.T) {
	mk := func() *Video {
		return &Video{ID: "v1", UploaderID: "u", Category: "c", Title: "Cute CATS, part 2!", Tags: []string{"cats", "funny"}}
	}
	raw, normalized, indexed := mk(), mk(), mk()
	normalized.Normalize(time.Now())
	New().Upsert(indexed)
	for name, v := range map[string]*Video{"raw": raw, "normalized": normalized, "indexed": indexed} {
		if v.Key() != IDKey("v1") || v.UploaderKey() != IDKey("u") || v.TitleKey() != TitleKey("cute cats part 2") || v.TagBits() != TagBits([]string{"funny", "cats"}) {
			t.Errorf("%s: derived keys differ from the fields'", name)
		}
	}
	if TitleKey("!!!") != EmptyTitleKey || SameTitle("!!!", "???") || !SameTitle("Part 2", "part-2") {
		t.Error("titles without letters or digits must never match; punctuation and case must not count")
	}
	if TagBits(nil) != 0 || TagBits([]string{"a"})&TagBits([]string{"a", "b"}) == 0 {
		t.Error("tag signatures: empty is 0, a shared tag shares a bit")
	}
}
