package catalog

import (
	"unicode"
	"unicode/utf8"

	"github.com/cespare/xxhash/v2"
)

// Near-duplicate detection compares titles and tag sets of every pair of
// candidates from one uploader on every feed request; what it needs of a
// video is computed once here, when the video is normalised or indexed.

// EmptyTitleKey is TitleKey of a title without letters or digits.
const EmptyTitleKey uint64 = 14695981039346656037 | 1

// TitleKey is FNV-1a over the normalised title (letters and digits, lower
// cased), never 0. Equal normalised titles have equal keys; equal keys are
// confirmed with SameTitle.
func TitleKey(title string) uint64 {
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

// SameTitle compares titles letter by letter, ignoring case and everything
// but letters and digits. Titles with no letters or digits are never
// equal: they say nothing about the content.
func SameTitle(a, b string) bool {
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

// TagBits is a 64-bit signature of a tag set: each tag sets one bit. Sets
// whose signatures share no bit share no tag.
func TagBits(tags []string) uint64 {
	var bits uint64
	for _, t := range tags {
		bits |= 1 << (xxhash.Sum64String(t) & 63)
	}
	return bits
}

// TitleKey returns TitleKey(v.Title), computed once when the video was
// normalised or indexed.
func (v *Video) TitleKey() uint64 {
	if v.titleKey != 0 {
		return v.titleKey
	}
	return TitleKey(v.Title)
}

// UploaderKey returns IDKey(v.UploaderID), computed once when the video
// was normalised or indexed.
func (v *Video) UploaderKey() uint64 {
	if v.upKey != 0 { // IDKey is never 0; and derived sits in the next cache line
		return v.upKey
	}
	return IDKey(v.UploaderID)
}

// TagBits returns TagBits(v.Tags), computed once when the video was
// normalised or indexed.
func (v *Video) TagBits() uint64 {
	if v.derived {
		return v.tagBits
	}
	return TagBits(v.Tags)
}

// derive computes what the hot path reads of v instead of its strings.
func (v *Video) derive() {
	v.key = IDKey(v.ID)
	v.upKey = IDKey(v.UploaderID)
	v.titleKey = TitleKey(v.Title)
	v.tagBits = TagBits(v.Tags)
	v.derived = true
}
