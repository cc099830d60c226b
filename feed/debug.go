package feed

import (
	"go.uber.org/zap"
	"math/bits"
	"time"

	"reelfeed/event"
	"reelfeed/feature"
	"reelfeed/filter"
	"reelfeed/rank"
)

// Debug explains a response. TookMs and Scorer are always set; the rest
// only when the request asked for debug.
type Debug struct {
	TookMs float64 `json:"took_ms"`
	Scorer string  `json:"scorer"`

	Stages   []StageDebug  `json:"stages,omitempty"`
	Branches []BranchDebug `json:"branches,omitempty"`
	Filters  []FilterDebug `json:"filters,omitempty"`
	// Notes record degradations: a dependency that failed open.
	Notes []string    `json:"notes,omitempty"`
	Items []ItemDebug `json:"items,omitempty"`
}

// StageDebug is one stage's candidates in and out and its duration.
type StageDebug struct {
	Stage string  `json:"stage"`
	In    int     `json:"in"`
	Out   int     `json:"out"`
	Ms    float64 `json:"ms"`
}

// BranchDebug is one recall branch's outcome.
type BranchDebug struct {
	Branch     string  `json:"branch"`
	Quota      int     `json:"quota"`
	Candidates int     `json:"candidates"`
	Ms         float64 `json:"ms"`
	// Inline: the branch answers from memory and ran on the request's
	// goroutine (recall.InProcess), not on its own.
	Inline bool `json:"inline,omitempty"`
	// Error is why the branch was dropped (fail open), if it was.
	Error string `json:"error,omitempty"`
}

// FilterDebug is one filter's pass over the candidates; Stage is "filter"
// for the main pass and "fill" for backfill candidates.
type FilterDebug struct {
	Filter  string `json:"filter"`
	Stage   string `json:"stage"`
	In      int    `json:"in"`
	Removed int    `json:"removed"`
	// Readmitted counts candidates let through softly (already shown).
	Readmitted int `json:"readmitted,omitempty"`
	// Sample lists up to debugSample removed video ids.
	Sample []string `json:"sample,omitempty"`
	Error  string   `json:"error,omitempty"`
}

// ItemDebug explains one served item.
type ItemDebug struct {
	VideoID string `json:"video_id"`
	Branch  string `json:"branch"`
	// ProposedBy lists every recall branch that proposed the video.
	ProposedBy []string `json:"proposed_by"`
	// Via says how the item got on the page: "slot" (its branch's
	// reserved slot), "best" (best remaining), "backfill:hot",
	// "backfill:catalog", "remaining" (cut before ranking, or capped) or
	// "readmitted" (already shown; nothing unseen was left).
	Via string `json:"via"`
	// Filters lists the filters it passed, in order.
	Filters  []string           `json:"filters"`
	Features FeatureDebug       `json:"features"`
	Parts    map[string]float64 `json:"parts,omitempty"`
	Score    float64            `json:"score"`
}

// FeatureDebug is the raw input the scorer saw for an item.
type FeatureDebug struct {
	Impressions24h  int64   `json:"impressions_24h"`
	Plays24h        int64   `json:"plays_24h"`
	ImpressionsLife int64   `json:"impressions_lifetime"`
	PlaysLife       int64   `json:"plays_lifetime"`
	CTR             float64 `json:"ctr"`
	Completion      float64 `json:"completion_rate"`
	Interaction     float64 `json:"interaction_rate"`
	Quality         float64 `json:"quality"`
	AgeHours        float64 `json:"age_hours"`
	TagShort        float64 `json:"affinity_tag_short"`
	TagLong         float64 `json:"affinity_tag_long"`
	CategoryShort   float64 `json:"affinity_category_short"`
	CategoryLong    float64 `json:"affinity_category_long"`
	UploaderShort   float64 `json:"affinity_uploader_short"`
	UploaderLong    float64 `json:"affinity_uploader_long"`
}

// debugSample bounds the removed ids listed per filter.
const debugSample = 20

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// stageClock times consecutive stages into metrics and, when debugging,
// into the response.
type stageClock struct {
	m     *metrics
	dbg   *Debug // nil: not debugging
	start time.Time
	took  [numStages]time.Duration // for the slow-request log
}

func (c *stageClock) done(s stage, in, out int) {
	now := time.Now()
	d := now.Sub(c.start)
	c.start = now
	c.took[s] += d
	c.m.stageSeconds[s].Observe(d.Seconds())
	c.m.stageIn[s].Add(float64(in))
	c.m.stageOut[s].Add(float64(out))
	if c.dbg != nil {
		c.dbg.Stages = append(c.dbg.Stages, StageDebug{Stage: s.String(), In: in, Out: out, Ms: ms(d)})
	}
}

func (c *stageClock) note(msg string) {
	if c.dbg != nil {
		c.dbg.Notes = append(c.dbg.Notes, msg)
	}
}

// branchNames lists the names of the branches set in mask.
func branchNames(mask uint64, names []string) []string {
	out := make([]string, 0, bits.OnesCount64(mask))
	for mask != 0 {
		i := bits.TrailingZeros64(mask)
		mask &^= 1 << i
		if i < len(names) {
			out = append(out, names[i])
		}
	}
	return out
}

// itemDebug explains one pick.
func itemDebug(p *pick, names, filters []string, sm feature.Smoothing, ua *rank.UserAffinity, now time.Time) ItemDebug {
	v := p.item.Video
	st := &p.item.Stats
	ctr, completion, interaction := rank.EngagementRates(sm, st)
	a := ua.Of(v)
	passed := make([]string, len(filters))
	copy(passed, filters)
	if p.cand.Readmitted {
		for i, f := range passed {
			if f == filter.NameShown {
				passed[i] = f + " (readmitted: last shown " + p.cand.LastShown.UTC().Format(time.RFC3339) + ")"
			}
		}
	}
	return ItemDebug{
		VideoID:    v.ID,
		Branch:     p.branch,
		ProposedBy: branchNames(p.cand.Branches, names),
		Via:        p.via,
		Filters:    passed,
		Features: FeatureDebug{
			Impressions24h: st.Day[event.Impression], Plays24h: st.Day[event.Play],
			ImpressionsLife: st.Lifetime[event.Impression], PlaysLife: st.Lifetime[event.Play],
			CTR: ctr, Completion: completion, Interaction: interaction,
			Quality: v.Quality, AgeHours: now.Sub(v.PublishedAt).Hours(),
			TagShort: a.TagShort, TagLong: a.TagLong,
			CategoryShort: a.CategoryShort, CategoryLong: a.CategoryLong,
			UploaderShort: a.UploaderShort, UploaderLong: a.UploaderLong,
		},
		Parts: p.item.Parts,
		Score: p.item.Score,
	}
}

// stageFields renders the stage times for a log line.
func (c *stageClock) stageFields(total time.Duration) []zap.Field {
	fields := make([]zap.Field, 0, numStages+1)
	fields = append(fields, zap.Duration("took", total))
	for s, d := range c.took {
		fields = append(fields, zap.Duration(stageNames[s], d))
	}
	return fields
}
