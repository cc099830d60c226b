package filter

import (
	"context"
	"fmt"
	"math/bits"
	"sync"

	"reelfeed/catalog"
)

// NearDuplicate keeps only the first of videos that are re-uploads of each
// other: same uploader and the same title once case, punctuation and spacing
// are ignored, or same uploader and tag sets overlapping by at least the
// Jaccard threshold. Candidates arrive best first, so the best copy stays.
type NearDuplicate struct {
	jaccard float64
	scratch sync.Pool // *dupScratch
}

type dupScratch struct {
	firstByUploader uploaderHeads // uploader → index of its first kept candidate
	nextSame        []int32       // kept index → next kept index with the same uploader, -1 ends
}

// uploaderHeads maps uploader keys (Video.UploaderKey) to a candidate
// index: a flat open-addressing table sized per request, cheaper than a
// string-keyed map for the few hundred lookups of one request.
type uploaderHeads struct {
	keys  []uint64 // 0: empty
	heads []int32
}

func (h *uploaderHeads) reset(n int) {
	size := 16
	for size < 2*n {
		size *= 2
	}
	if cap(h.keys) < size {
		h.keys, h.heads = make([]uint64, size), make([]int32, size)
		return
	}
	h.keys, h.heads = h.keys[:size], h.heads[:size]
	clear(h.keys)
}

// slot returns the table position for key and whether key is there.
func (h *uploaderHeads) slot(key uint64) (int, bool) {
	mask := uint64(len(h.keys) - 1)
	for i := key & mask; ; i = (i + 1) & mask {
		switch h.keys[i] {
		case key:
			return int(i), true
		case 0:
			return int(i), false
		}
	}
}

// NewNearDuplicate returns the filter; jaccard in (0, 1] (1: identical tag
// sets only).
func NewNearDuplicate(jaccard float64) (*NearDuplicate, error) {
	if !(jaccard > 0 && jaccard <= 1) {
		return nil, fmt.Errorf("filter: near-duplicate jaccard threshold %v not in (0, 1]", jaccard)
	}
	f := &NearDuplicate{jaccard: jaccard}
	f.scratch.New = func() any { return &dupScratch{} }
	return f, nil
}

func (*NearDuplicate) Name() string { return NameNearDuplicate }

func (f *NearDuplicate) Apply(_ context.Context, _ *Request, cands []Candidate) (int, error) {
	s := f.scratch.Get().(*dupScratch)
	defer func() {
		s.nextSame = s.nextSame[:0]
		f.scratch.Put(s)
	}()
	s.firstByUploader.reset(len(cands))
	n := 0
	for i := range cands {
		v := cands[i].Video
		at, known := s.firstByUploader.slot(v.UploaderKey())
		head := s.firstByUploader.heads[at]
		dup := false
		last := int32(-1)
		for j := head; known && j >= 0; j = s.nextSame[j] {
			if f.similar(cands[j].Video, v) {
				dup = true
				break
			}
			last = j
		}
		if dup {
			continue
		}
		if i != n {
			cands[i], cands[n] = cands[n], cands[i]
		}
		s.nextSame = append(s.nextSame, -1)
		if known {
			s.nextSame[last] = int32(n)
		} else {
			s.firstByUploader.keys[at], s.firstByUploader.heads[at] = v.UploaderKey(), int32(n)
		}
		n++
	}
	return n, nil
}

// similar compares two videos of one uploader. The title keys and tag
// signatures the catalog computed settle most pairs without reading a
// title or tag.
func (f *NearDuplicate) similar(a, b *catalog.Video) bool {
	if ka := a.TitleKey(); ka == b.TitleKey() && ka != catalog.EmptyTitleKey && catalog.SameTitle(a.Title, b.Title) {
		return true
	}
	ta, tb := a.TagBits(), b.TagBits()
	if ta&tb == 0 {
		return false // no tag in common
	}
	// Each bit set in one signature only stands for at least one distinct
	// tag in one set only, so x bounds the symmetric difference d from
	// below, and Jaccard = 1 − 2d/(|a|+|b|+d) from above.
	n, x := float64(len(a.Tags)+len(b.Tags)), float64(bits.OnesCount64(ta^tb))
	if 1-2*x/(n+x) < f.jaccard {
		return false
	}
	return tagJaccard(a.Tags, b.Tags) >= f.jaccard
}

// tagJaccard is |a∩b| / |a∪b| over canonical tag sets; 0 when both are
// empty (no tags is no evidence of duplication).
func tagJaccard(a, b []string) float64 {
	if len(a) == 0 || len(b) == 0 {
		return 0
	}
	inter := 0
	for _, x := range a {
		for _, y := range b {
			if x == y {
				inter++
				break
			}
		}
	}
	return float64(inter) / float64(len(a)+len(b)-inter)
}
