package rank

import (
	"context"
	"fmt"
	"math"
	"time"

	"reelfeed/catalog"
	"reelfeed/feature"
	"reelfeed/profile"
)

// FormulaName is the formula scorer's name in metrics, debug output and
// impression logs.
const FormulaName = "formula"

// FormulaParamPrefix prefixes the A/B parameter names that override a
// weight: "formula.ctr" overrides Weights.CTR.
const FormulaParamPrefix = "formula."

// Weights are the formula's coefficients. Every field can be overridden per
// A/B variant by the parameter FormulaParamPrefix + its json name.
type Weights struct {
	CTR              float64 `json:"ctr" mapstructure:"ctr"`
	Completion       float64 `json:"completion" mapstructure:"completion"`
	Interaction      float64 `json:"interaction" mapstructure:"interaction"`
	TagAffinity      float64 `json:"tag_affinity" mapstructure:"tag_affinity"`
	CategoryAffinity float64 `json:"category_affinity" mapstructure:"category_affinity"`
	UploaderAffinity float64 `json:"uploader_affinity" mapstructure:"uploader_affinity"`
	Freshness        float64 `json:"freshness" mapstructure:"freshness"`
	Quality          float64 `json:"quality" mapstructure:"quality"`
	// ShortTermShare blends interests: affinity = share·short + (1−share)·long.
	ShortTermShare float64 `json:"short_term_share" mapstructure:"short_term_share"`
}

// DefaultWeights makes a strong interest match worth about as much as a
// top CTR, so personal relevance leads while engagement still separates
// videos within an interest.
func DefaultWeights() Weights {
	return Weights{
		CTR:              1.0,
		Completion:       1.0,
		Interaction:      2.0,
		TagAffinity:      1.0,
		CategoryAffinity: 0.6,
		UploaderAffinity: 0.6,
		Freshness:        0.1,
		Quality:          0.5,
		ShortTermShare:   0.6,
	}
}

// field returns the weight a parameter name (without prefix) addresses.
func (w *Weights) field(name string) *float64 {
	switch name {
	case "ctr":
		return &w.CTR
	case "completion":
		return &w.Completion
	case "interaction":
		return &w.Interaction
	case "tag_affinity":
		return &w.TagAffinity
	case "category_affinity":
		return &w.CategoryAffinity
	case "uploader_affinity":
		return &w.UploaderAffinity
	case "freshness":
		return &w.Freshness
	case "quality":
		return &w.Quality
	case "short_term_share":
		return &w.ShortTermShare
	}
	return nil
}

// formulaWeightNames lists every overridable weight, in Parts order, and
// formulaParamNames the A/B parameter that overrides each.
var (
	formulaWeightNames = [...]string{"ctr", "completion", "interaction", "tag_affinity", "category_affinity",
		"uploader_affinity", "freshness", "quality", "short_term_share"}
	formulaParamNames = [...]string{"formula.ctr", "formula.completion", "formula.interaction",
		"formula.tag_affinity", "formula.category_affinity", "formula.uploader_affinity",
		"formula.freshness", "formula.quality", "formula.short_term_share"}
)

// Set sets the weight called name (json name, without prefix); it reports
// false for an unknown name or a value outside the weight's range.
func (w *Weights) Set(name string, v float64) bool {
	f := w.field(name)
	if f == nil || math.IsNaN(v) || math.IsInf(v, 0) {
		return false
	}
	if name == "short_term_share" && (v < 0 || v > 1) {
		return false
	}
	*f = v
	return true
}

// Validate returns field → problem for every invalid weight.
func (w Weights) Validate() map[string]string {
	bad := map[string]string{}
	for _, n := range formulaWeightNames {
		v := *w.field(n)
		if !(&Weights{}).Set(n, v) {
			bad[n] = "must be a finite number (short_term_share in [0,1])"
		}
	}
	return bad
}

// VariantParams resolves the numeric parameters an A/B variant overrides.
// The feed's runtime knobs implement it; variant is rank.Query.Variant.
type VariantParams interface {
	Param(variant, name string) (float64, bool)
}

// FormulaConfig configures the formula scorer.
type FormulaConfig struct {
	Weights Weights `json:"weights" mapstructure:"weights"`
	// FreshnessHalfLife: a video this old gets half the freshness bonus.
	FreshnessHalfLife time.Duration     `json:"freshness_half_life" mapstructure:"freshness_half_life"`
	Smoothing         feature.Smoothing `json:"smoothing" mapstructure:"smoothing"`
}

// DefaultFormulaConfig returns the documented defaults.
func DefaultFormulaConfig() FormulaConfig {
	return FormulaConfig{
		Weights:           DefaultWeights(),
		FreshnessHalfLife: 48 * time.Hour,
		Smoothing:         feature.DefaultSmoothing(),
	}
}

// Formula is the hand-tuned scorer: a weighted sum of real-time engagement
// rates, the user's affinity to the video's tags, category and uploader,
// freshness and editorial quality. It needs no model, so it is also the
// fallback when the learned scorer is unavailable.
type Formula struct {
	cfg    FormulaConfig
	params VariantParams
}

// NewFormula returns the formula scorer. params may be nil (no A/B
// overrides).
func NewFormula(cfg FormulaConfig, params VariantParams) (*Formula, error) {
	if bad := cfg.Weights.Validate(); len(bad) > 0 {
		return nil, fmt.Errorf("rank: invalid formula weights: %v", bad)
	}
	if cfg.FreshnessHalfLife <= 0 {
		return nil, fmt.Errorf("rank: formula freshness_half_life must be > 0")
	}
	if cfg.Smoothing.Strength <= 0 {
		return nil, fmt.Errorf("rank: formula smoothing strength must be > 0")
	}
	return &Formula{cfg: cfg, params: params}, nil
}

var _ Scorer = (*Formula)(nil)

// Name implements Scorer.
func (f *Formula) Name() string { return FormulaName }

// weightsFor applies the variant's overrides to the configured weights.
func (f *Formula) weightsFor(variant string) Weights {
	w := f.cfg.Weights
	if variant == "" || f.params == nil {
		return w
	}
	for i, n := range formulaWeightNames {
		if v, ok := f.params.Param(variant, formulaParamNames[i]); ok {
			w.Set(n, v)
		}
	}
	return w
}

// Score implements Scorer.
func (f *Formula) Score(ctx context.Context, q *Query, items []Item) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	w := f.weightsFor(q.Variant)
	ua := NewUserAffinity(q.Profile)
	halfLifeSec := f.cfg.FreshnessHalfLife.Seconds()
	for i := range items {
		it := &items[i]
		v := it.Video
		ctr, completion, interaction := EngagementRates(f.cfg.Smoothing, &it.Stats)
		a := ua.Of(v)
		s := w.ShortTermShare
		tag := s*a.TagShort + (1-s)*a.TagLong
		cat := s*a.CategoryShort + (1-s)*a.CategoryLong
		upl := s*a.UploaderShort + (1-s)*a.UploaderLong
		age := q.Now.Sub(v.PublishedAt).Seconds()
		if age < 0 {
			age = 0
		}
		fresh := math.Exp2(-age / halfLifeSec)

		parts := [...]float64{
			w.CTR * ctr,
			w.Completion * completion,
			w.Interaction * interaction,
			w.TagAffinity * tag,
			w.CategoryAffinity * cat,
			w.UploaderAffinity * upl,
			w.Freshness * fresh,
			w.Quality * v.Quality,
		}
		var score float64
		for _, p := range parts {
			score += p
		}
		it.Score = score
		if q.Debug {
			if it.Parts == nil {
				it.Parts = make(map[string]float64, len(parts))
			}
			for j, p := range parts {
				it.Parts[formulaWeightNames[j]] = p
			}
		}
	}
	return nil
}

// EngagementRates returns the smoothed CTR, completion and interaction rates of a
// video. The last 24 hours lead (real-time), smoothed towards the video's
// own lifetime rate, which is in turn smoothed towards the global prior: a
// video with a long history but a quiet day keeps its reputation.
func EngagementRates(sm feature.Smoothing, st *feature.Stats) (ctr, completion, interaction float64) {
	life := feature.Smoothing{
		PriorCTR:         sm.CTR(st.Lifetime),
		PriorCompletion:  sm.CompletionRate(st.Lifetime),
		PriorInteraction: sm.InteractionRate(st.Lifetime),
		Strength:         sm.Strength,
	}
	return life.CTR(st.Day), life.CompletionRate(st.Day), life.InteractionRate(st.Day)
}

// Affinity is how well a video matches a user's interests, per kind and
// horizon, each in [-1, 1] (negative: the user skips or dislikes it).
type Affinity struct {
	TagShort, TagLong           float64
	CategoryShort, CategoryLong float64
	UploaderShort, UploaderLong float64
}

// UserAffinity scores videos against one user's interests. Interest scores
// are unbounded sums of decayed event weights, so each map is scaled by its
// largest magnitude once per request: a user's strongest interest is 1
// whatever their activity level. The short- and long-term maps of each
// kind are merged once per request too, so scoring a candidate looks each
// of its tags, its category and its uploader up once.
type UserAffinity struct {
	scales                [6]float64            // 1/max|v| per map, in Affinity field order; 0: empty
	tags, cats, uploaders map[string][2]float64 // [short, long], unscaled
}

// NewUserAffinity prepares p's interests for scoring (p may be nil).
func NewUserAffinity(p *profile.Profile) UserAffinity {
	var ua UserAffinity
	if p == nil {
		return ua
	}
	maps := [6]map[string]float64{p.ShortTerm.Tags, p.LongTerm.Tags, p.ShortTerm.Categories,
		p.LongTerm.Categories, p.ShortTerm.Uploaders, p.LongTerm.Uploaders}
	for i, m := range maps {
		var mx float64
		for _, v := range m {
			mx = math.Max(mx, math.Abs(v))
		}
		if mx > 0 {
			ua.scales[i] = 1 / mx
		}
	}
	ua.tags = mergeHorizons(maps[0], maps[1])
	ua.cats = mergeHorizons(maps[2], maps[3])
	ua.uploaders = mergeHorizons(maps[4], maps[5])
	return ua
}

// mergeHorizons pairs a kind's short- and long-term scores by key.
func mergeHorizons(short, long map[string]float64) map[string][2]float64 {
	if len(short)+len(long) == 0 {
		return nil
	}
	m := make(map[string][2]float64, max(len(short), len(long)))
	for k, v := range short {
		m[k] = [2]float64{v, long[k]}
	}
	for k, v := range long {
		if _, ok := m[k]; !ok {
			m[k] = [2]float64{0, v}
		}
	}
	return m
}

// Of returns v's affinities. Tag affinity sums over the video's tags and
// divides by √n, so one strong tag counts but tag-stuffing does not; it is
// clamped to [-1, 1].
func (ua *UserAffinity) Of(v *catalog.Video) Affinity {
	var a Affinity
	if len(v.Tags) > 0 && ua.tags != nil {
		var s, l float64
		for _, t := range v.Tags {
			x := ua.tags[t]
			s += x[0]
			l += x[1]
		}
		norm := 1 / math.Sqrt(float64(len(v.Tags)))
		a.TagShort = clamp1(s * ua.scales[0] * norm)
		a.TagLong = clamp1(l * ua.scales[1] * norm)
	}
	if ua.cats != nil {
		x := ua.cats[v.Category]
		a.CategoryShort, a.CategoryLong = x[0]*ua.scales[2], x[1]*ua.scales[3]
	}
	if ua.uploaders != nil {
		x := ua.uploaders[v.UploaderID]
		a.UploaderShort, a.UploaderLong = x[0]*ua.scales[4], x[1]*ua.scales[5]
	}
	return a
}

func clamp1(x float64) float64 { return math.Max(-1, math.Min(1, x)) }
