package filter

import (
	"context"
	"fmt"
	"sync"
	"unicode"
	"unicode/utf8"

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
	firstByUploader map[string]int32 // uploader → index of its first kept candidate
	nextSame        []int32          // kept index → next kept index with the same uploader, -1 ends
	titleHash       []uint64         // kept index → normalised title hash, 0: not computed yet
}

// NewNearDuplicate returns the filter; jaccard in (0, 1] (1: identical tag
// sets only).
func NewNearDuplicate(jaccard float64) (*NearDuplicate, error) {
	if !(jaccard > 0 && jaccard <= 1) {
		return nil, fmt.Errorf("filter: near-duplicate jaccard threshold %v not in (0, 1]", jaccard)
	}
	f := &NearDuplicate{jaccard: jaccard}
	f.scratch.New = func() any { return &dupScratch{firstByUploader: map[string]int32{}} }
	return f, nil
}

func (*NearDuplicate) Name() string { return NameNearDuplicate }

func (f *NearDuplicate) Apply(_ context.Context, _ *Request, cands []Candidate) (int, error) {
	s := f.scratch.Get().(*dupScratch)
	defer func() {
		clear(s.firstByUploader)
		s.nextSame = s.nextSame[:0]
		s.titleHash = s.titleHash[:0]
		f.scratch.Put(s)
	}()
	n := 0
	for i := range cands {
		v := cands[i].Video
		head, known := s.firstByUploader[v.UploaderID]
		dup := false
		last := int32(-1)
		var hash uint64
		// Most candidates are their uploader's only one: titles are hashed
		// only when there is something to compare with.
		for j := head; known && j >= 0; j = s.nextSame[j] {
			if hash == 0 {
				hash = titleHash(v.Title)
			}
			if s.titleHash[j] == 0 {
				s.titleHash[j] = titleHash(cands[j].Video.Title)
			}
			if f.similar(cands[j].Video, v, s.titleHash[j], hash) {
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
		s.titleHash = append(s.titleHash, hash)
		if known {
			s.nextSame[last] = int32(n)
		} else {
			s.firstByUploader[v.UploaderID] = int32(n)
		}
		n++
	}
	return n, nil
}

// similar compares two videos of one uploader; ha and hb are their
// titleHash values, so differing titles rarely need a full comparison.
func (f *NearDuplicate) similar(a, b *catalog.Video, ha, hb uint64) bool {
	if ha == hb && ha != emptyTitleHash && sameNormalisedTitle(a.Title, b.Title) {
		return true
	}
	return tagJaccard(a.Tags, b.Tags) >= f.jaccard
}

// emptyTitleHash is titleHash of a title without letters or digits.
const emptyTitleHash = 14695981039346656037 | 1

// titleHash is FNV-1a over the normalised title (letters and digits, lower
// cased), never 0 so 0 can mean "not computed".
func titleHash(title string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; ; {
		r, next := nextTitleRune(title, i)
		if next < 0 {
			return h | 1
		}
		h = (h ^ uint64(r)) * 1099511628211
		i = next
	}
}

// sameNormalisedTitle compares titles letter by letter, ignoring case and
// everything but letters and digits. Titles with no letters or digits are
// never equal: they say nothing about the content.
func sameNormalisedTitle(a, b string) bool {
	i, j := 0, 0
	matched := false
	for {
		ra, na := nextTitleRune(a, i)
		rb, nb := nextTitleRune(b, j)
		if na < 0 || nb < 0 {
			return na < 0 && nb < 0 && matched
		}
		if ra != rb {
			return false
		}
		matched = true
		i, j = na, nb
	}
}

// nextTitleRune returns the next letter or digit at or after byte i, lower
// cased, and the offset after it; -1 when none is left.
func nextTitleRune(s string, i int) (rune, int) {
	for i < len(s) {
		r, size := utf8.DecodeRuneInString(s[i:])
		i += size
		if unicode.IsLetter(r) || unicode.IsDigit(r) {
			return unicode.ToLower(r), i
		}
	}
	return 0, -1
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
