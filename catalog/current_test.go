package catalog

import (
	"fmt"
	"testing"
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
