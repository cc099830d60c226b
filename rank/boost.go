package rank

import (
	"fmt"
	"math"
	"strings"
)

// BoostPart is the Item.Parts key holding the boost factor applied.
const BoostPart = "boost"

// MaxBoostFactor bounds a boost so one knob cannot bury or pin a category.
const MaxBoostFactor = 10

// Boosts are runtime multiplicative factors by category and tag (1.2: +20%),
// applied after any scorer. A Boosts value is immutable; the feed's knobs
// swap in a new one on change.
type Boosts struct {
	category map[string]float64
	tag      map[string]float64
}

// NewBoosts copies the factor maps (keys are lower-cased like catalog
// categories and tags). Every factor must be in (0, MaxBoostFactor].
func NewBoosts(category, tag map[string]float64) (*Boosts, error) {
	b := &Boosts{}
	var err error
	if b.category, err = copyFactors("category", category); err != nil {
		return nil, err
	}
	if b.tag, err = copyFactors("tag", tag); err != nil {
		return nil, err
	}
	return b, nil
}

// ValidBoostFactor reports whether f is an acceptable boost factor.
func ValidBoostFactor(f float64) bool {
	return f > 0 && f <= MaxBoostFactor && !math.IsNaN(f)
}

func copyFactors(kind string, in map[string]float64) (map[string]float64, error) {
	if len(in) == 0 {
		return nil, nil
	}
	out := make(map[string]float64, len(in))
	for k, f := range in {
		if !ValidBoostFactor(f) {
			return nil, fmt.Errorf("rank: %s boost %q: factor %v not in (0, %d]", kind, k, f, MaxBoostFactor)
		}
		out[strings.ToLower(strings.TrimSpace(k))] = f
	}
	return out, nil
}

// Empty reports whether applying b changes nothing.
func (b *Boosts) Empty() bool { return b == nil || (len(b.category) == 0 && len(b.tag) == 0) }

// Factor is the product of v's category factor and its tags' factors.
func (b *Boosts) Factor(category string, tags []string) float64 {
	if b.Empty() {
		return 1
	}
	f := 1.0
	if c, ok := b.category[category]; ok {
		f *= c
	}
	if len(b.tag) > 0 {
		for _, t := range tags {
			if c, ok := b.tag[t]; ok {
				f *= c
			}
		}
	}
	return f
}

// Apply multiplies each item's score by its factor. A negative score is
// divided instead, so a boost always moves an item up. With debug set, the
// factor is recorded in Parts[BoostPart] for boosted items.
func (b *Boosts) Apply(items []Item, debug bool) {
	if b.Empty() {
		return
	}
	for i := range items {
		it := &items[i]
		f := b.Factor(it.Video.Category, it.Video.Tags)
		if f == 1 {
			continue
		}
		if it.Score >= 0 {
			it.Score *= f
		} else {
			it.Score /= f
		}
		if debug {
			if it.Parts == nil {
				it.Parts = make(map[string]float64, 1)
			}
			it.Parts[BoostPart] = f
		}
	}
}
