package feed

import (
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"sync/atomic"

	"reelfeed/catalog"
	"reelfeed/filter"
	"reelfeed/rank"
	"reelfeed/recall"
)

// KnobState is the runtime-tunable state, in the JSON shape the admin API
// serves and replicas exchange: every replica applies the same KnobState.
type KnobState struct {
	Blacklist BlacklistState `json:"blacklist" mapstructure:"blacklist"`
	Boosts    BoostState     `json:"boosts" mapstructure:"boosts"`
	// Slots maps a segment (new, cold, active) to its slot plan.
	Slots map[string]SlotPlan `json:"slots" mapstructure:"slots"`
	// Experiments maps an experiment name to its variants.
	Experiments map[string]Experiment `json:"experiments" mapstructure:"experiments"`
}

// BlacklistState lists what is never served.
type BlacklistState struct {
	Videos    []string `json:"videos" mapstructure:"videos"`
	Tags      []string `json:"tags" mapstructure:"tags"`
	Uploaders []string `json:"uploaders" mapstructure:"uploaders"`
}

// BoostState holds multiplicative score factors (1.2: +20%).
type BoostState struct {
	Category map[string]float64 `json:"category" mapstructure:"category"`
	Tag      map[string]float64 `json:"tag" mapstructure:"tag"`
}

// SlotPlan maps a recall branch to its reserved slots in a page of
// sum(slots) items; other page sizes scale it proportionally. Each branch's
// slots go to its best-ranked candidates; slots a branch cannot fill, and
// pages larger than the plan, go to the best remaining candidates of any
// branch.
type SlotPlan map[string]int

// Experiment splits users between variants by a stable hash of (user,
// experiment); a user outside every variant's traffic sees the defaults.
type Experiment struct {
	Variants []Variant `json:"variants" mapstructure:"variants"`
}

// Variant is one arm of an experiment: a traffic share in [0,1] and the
// parameters it overrides. Parameters:
//
//	formula.<weight>          a rank.Weights field (formula.ctr, formula.tag_affinity, …)
//	quota.<branch>            recall quota of a branch
//	slots.<segment>.<branch>  slot plan entry
//	caps.category|caps.uploader|caps.special  page caps (shares in (0,1])
type Variant struct {
	Name    string             `json:"name" mapstructure:"name"`
	Traffic float64            `json:"traffic" mapstructure:"traffic"`
	Params  map[string]float64 `json:"params" mapstructure:"params"`
}

// DefaultKnobState returns the documented default slot plans and nothing
// blacklisted, boosted or under experiment. New users get most of their
// page from the start and hot branches; active users from personalised
// branches; every segment keeps a slot for exploration and fresh uploads.
func DefaultKnobState() KnobState {
	return KnobState{
		Slots: map[string]SlotPlan{
			string(recall.SegmentNew):    {"start": 4, "hot": 4, "explore": 1, "new": 1},
			string(recall.SegmentCold):   {"start": 2, "hot": 3, "tag": 2, "i2i": 1, "explore": 1, "new": 1},
			string(recall.SegmentActive): {"tag": 3, "i2i": 2, "usercf": 1, "uploader": 1, "hot": 1, "explore": 1, "new": 1},
		},
	}
}

// Clone returns a deep copy.
func (s KnobState) Clone() KnobState {
	out := KnobState{
		Blacklist: BlacklistState{
			Videos:    slices.Clone(s.Blacklist.Videos),
			Tags:      slices.Clone(s.Blacklist.Tags),
			Uploaders: slices.Clone(s.Blacklist.Uploaders),
		},
		Boosts: BoostState{Category: maps.Clone(s.Boosts.Category), Tag: maps.Clone(s.Boosts.Tag)},
	}
	if s.Slots != nil {
		out.Slots = make(map[string]SlotPlan, len(s.Slots))
		for k, p := range s.Slots {
			out.Slots[k] = maps.Clone(p)
		}
	}
	if s.Experiments != nil {
		out.Experiments = make(map[string]Experiment, len(s.Experiments))
		for k, e := range s.Experiments {
			vs := make([]Variant, len(e.Variants))
			for i, v := range e.Variants {
				vs[i] = Variant{Name: v.Name, Traffic: v.Traffic, Params: maps.Clone(v.Params)}
			}
			out.Experiments[k] = Experiment{Variants: vs}
		}
	}
	return out
}

// normalize canonicalises names the way the catalog stores them (tags and
// categories lower-cased) and sorts and deduplicates the lists, so equal
// states compare and serialise equal.
func (s *KnobState) normalize() {
	set := func(in []string, canon func(string) string) []string {
		out := make([]string, 0, len(in))
		for _, x := range in {
			out = append(out, canon(x))
		}
		slices.Sort(out)
		return slices.Compact(out)
	}
	s.Blacklist.Videos = set(s.Blacklist.Videos, strings.TrimSpace)
	s.Blacklist.Tags = set(s.Blacklist.Tags, canonicalName)
	s.Blacklist.Uploaders = set(s.Blacklist.Uploaders, strings.TrimSpace)
	canonMap := func(in map[string]float64) map[string]float64 {
		out := make(map[string]float64, len(in))
		for k, v := range in {
			out[canonicalName(k)] = v
		}
		return out
	}
	s.Boosts.Category = canonMap(s.Boosts.Category)
	s.Boosts.Tag = canonMap(s.Boosts.Tag)
	if s.Slots == nil {
		s.Slots = map[string]SlotPlan{}
	}
	if s.Experiments == nil {
		s.Experiments = map[string]Experiment{}
	}
}

// canonicalName spells a tag or category the way the catalog stores it.
func canonicalName(s string) string { return strings.ToLower(strings.TrimSpace(s)) }

// Limits on runtime state, so an admin typo cannot exhaust memory.
const (
	maxBlacklist   = 100_000
	maxBoosts      = 10_000
	maxExperiments = 64
	maxVariants    = 16
	maxParams      = 64
	maxSlots       = 1000
	maxKnobNameLen = 128
)

// Validate returns field → problem for every invalid entry (empty: valid).
// Field names are JSON paths, e.g. "experiments.ranker.variants[1].traffic".
func (s KnobState) Validate() map[string]string {
	bad := map[string]string{}
	checkList := func(field string, list []string, valid func(string) bool) {
		if len(list) > maxBlacklist {
			bad[field] = fmt.Sprintf("more than %d entries", maxBlacklist)
		}
		for i, x := range list {
			if !valid(x) {
				bad[fmt.Sprintf("%s[%d]", field, i)] = "invalid: empty, too long or containing whitespace, '*' or '>'"
			}
		}
	}
	checkList("blacklist.videos", s.Blacklist.Videos, catalog.ValidID)
	checkList("blacklist.tags", s.Blacklist.Tags, validTagName)
	checkList("blacklist.uploaders", s.Blacklist.Uploaders, catalog.ValidID)
	checkBoosts := func(field string, m map[string]float64) {
		if len(m) > maxBoosts {
			bad[field] = fmt.Sprintf("more than %d entries", maxBoosts)
		}
		for k, f := range m {
			if !validTagName(k) {
				bad[field+"."+k] = fmt.Sprintf("name must be 1 to %d bytes", catalog.MaxTagLen)
			} else if !rank.ValidBoostFactor(f) {
				bad[field+"."+k] = fmt.Sprintf("factor must be in (0, %d]", rank.MaxBoostFactor)
			}
		}
	}
	checkBoosts("boosts.category", s.Boosts.Category)
	checkBoosts("boosts.tag", s.Boosts.Tag)
	for seg, plan := range s.Slots {
		if !validSegment(seg) {
			bad["slots."+seg] = "segment must be new, cold or active"
			continue
		}
		maps.Copy(bad, validateSlotPlan("slots."+seg+".", plan))
	}
	if len(s.Experiments) > maxExperiments {
		bad["experiments"] = fmt.Sprintf("more than %d experiments", maxExperiments)
	}
	for name, e := range s.Experiments {
		if !validKnobName(name) {
			bad["experiments."+name] = "experiment name must be non-empty, without whitespace, ',' or ':'"
			continue
		}
		maps.Copy(bad, validateExperiment("experiments."+name+".", e))
	}
	return bad
}

func validKnobName(s string) bool {
	return s != "" && len(s) <= maxKnobNameLen && !strings.ContainsAny(s, " \t\r\n,:*>")
}

// validTagName accepts what the catalog accepts as a tag or category.
func validTagName(s string) bool { return s != "" && len(s) <= catalog.MaxTagLen }

func validSegment(s string) bool {
	switch recall.Segment(s) {
	case recall.SegmentNew, recall.SegmentCold, recall.SegmentActive:
		return true
	}
	return false
}

// validateSlotPlan checks one plan; problems are keyed prefix + branch.
func validateSlotPlan(prefix string, plan SlotPlan) map[string]string {
	bad := map[string]string{}
	total := 0
	for branch, n := range plan {
		switch {
		case !validKnobName(branch):
			bad[prefix+branch] = "invalid branch name"
		case n < 0 || n > maxSlots:
			bad[prefix+branch] = fmt.Sprintf("slots must be in [0, %d]", maxSlots)
		default:
			total += n
		}
	}
	if total == 0 && len(bad) == 0 {
		key := strings.TrimSuffix(prefix, ".")
		if key == "" {
			key = "slots"
		}
		bad[key] = "a slot plan needs at least one slot"
	}
	return bad
}

// validateExperiment checks one experiment's variants; problems are keyed
// prefix + "variants[i].field".
func validateExperiment(prefix string, e Experiment) map[string]string {
	bad := map[string]string{}
	if len(e.Variants) == 0 || len(e.Variants) > maxVariants {
		bad[prefix+"variants"] = fmt.Sprintf("need 1 to %d variants", maxVariants)
	}
	var traffic float64
	seen := map[string]bool{}
	for i, v := range e.Variants {
		vf := fmt.Sprintf("%svariants[%d]", prefix, i)
		if !validKnobName(v.Name) {
			bad[vf+".name"] = "variant name must be non-empty, without whitespace, ',' or ':'"
		} else if seen[v.Name] {
			bad[vf+".name"] = "duplicate variant name"
		}
		seen[v.Name] = true
		if !(v.Traffic >= 0 && v.Traffic <= 1) {
			bad[vf+".traffic"] = "must be a share in [0, 1]"
		}
		traffic += v.Traffic
		if len(v.Params) > maxParams {
			bad[vf+".params"] = fmt.Sprintf("more than %d parameters", maxParams)
		}
		for p, x := range v.Params {
			if problem := checkParam(p, x); problem != "" {
				bad[vf+".params."+p] = problem
			}
		}
	}
	if traffic > 1+1e-9 {
		bad[prefix+"variants"] = "traffic shares add up to more than 1"
	}
	return bad
}

// checkParam validates one experiment parameter; it returns the problem.
func checkParam(name string, v float64) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return "must be a finite number"
	}
	isInt := v == math.Trunc(v)
	switch {
	case strings.HasPrefix(name, rank.FormulaParamPrefix):
		var w rank.Weights
		if !w.Set(strings.TrimPrefix(name, rank.FormulaParamPrefix), v) {
			return "unknown formula weight or value out of range"
		}
	case strings.HasPrefix(name, "quota."):
		if !validKnobName(strings.TrimPrefix(name, "quota.")) {
			return "quota.<branch>: invalid branch"
		}
		if !isInt || v < 0 || v > 10_000 {
			return "quota must be an integer in [0, 10000]"
		}
	case strings.HasPrefix(name, "slots."):
		seg, branch, ok := strings.Cut(strings.TrimPrefix(name, "slots."), ".")
		if !ok || !validSegment(seg) || !validKnobName(branch) {
			return "slots.<segment>.<branch>: segment must be new, cold or active"
		}
		if !isInt || v < 0 || v > maxSlots {
			return fmt.Sprintf("slots must be an integer in [0, %d]", maxSlots)
		}
	case name == "caps.category" || name == "caps.uploader" || name == "caps.special":
		if !(v > 0 && v <= 1) {
			return "caps are shares in (0, 1]"
		}
	default:
		return "unknown parameter (formula.<weight>, quota.<branch>, slots.<segment>.<branch>, caps.<category|uploader|special>)"
	}
	return ""
}

// ValidationError reports invalid input field by field (HTTP 400).
type ValidationError struct {
	Fields map[string]string
}

func (e *ValidationError) Error() string {
	keys := slices.Sorted(maps.Keys(e.Fields))
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + ": " + e.Fields[k]
	}
	return "invalid: " + strings.Join(parts, "; ")
}

// Knobs holds the current runtime state. Readers take an immutable
// snapshot per request (one atomic load); Set builds a new snapshot and
// swaps it in, so a change applies to the next request on this replica and
// never half-way through one.
type Knobs struct {
	cur atomic.Pointer[knobSnapshot]
}

// NewKnobs returns knobs holding initial.
func NewKnobs(initial KnobState) (*Knobs, error) {
	k := &Knobs{}
	if err := k.Set(initial); err != nil {
		return nil, err
	}
	return k, nil
}

// Get returns a copy of the current state.
func (k *Knobs) Get() KnobState { return k.cur.Load().state.Clone() }

// Set replaces the whole state; it returns a *ValidationError and changes
// nothing when s is invalid.
func (k *Knobs) Set(s KnobState) error {
	s = s.Clone()
	s.normalize()
	if bad := s.Validate(); len(bad) > 0 {
		return &ValidationError{Fields: bad}
	}
	snap, err := compileKnobs(s)
	if err != nil {
		return err
	}
	k.cur.Store(snap)
	return nil
}

// Param implements rank.VariantParams: the value the variant label sets
// for a parameter. A label joins a user's arms as "exp:variant,exp2:v2";
// when two arms set the same parameter, the later experiment (by name) wins.
func (k *Knobs) Param(variant, name string) (float64, bool) {
	snap := k.cur.Load()
	var val float64
	found := false
	for rest := variant; rest != ""; {
		var label string
		label, rest, _ = strings.Cut(rest, ",")
		if v, ok := snap.variants[label]; ok {
			if x, ok := v.params[name]; ok {
				val, found = x, true
			}
		}
	}
	return val, found
}

func (k *Knobs) snapshot() *knobSnapshot { return k.cur.Load() }

var _ rank.VariantParams = (*Knobs)(nil)

// knobSnapshot is a KnobState compiled for the request path. Immutable.
type knobSnapshot struct {
	state       KnobState
	blacklist   *filter.Blacklist
	boosts      *rank.Boosts
	slots       map[recall.Segment]compiledPlan
	experiments []compiledExperiment // by name
	variants    map[string]*compiledVariant
}

type compiledPlan struct {
	slots SlotPlan
	total int
}

type compiledExperiment struct {
	name     string
	variants []*compiledVariant
}

type compiledVariant struct {
	label  string  // "experiment:variant"
	upTo   float64 // cumulative traffic: bucket < upTo selects this variant
	params map[string]float64
}

func compileKnobs(s KnobState) (*knobSnapshot, error) {
	boosts, err := rank.NewBoosts(s.Boosts.Category, s.Boosts.Tag)
	if err != nil {
		return nil, err
	}
	snap := &knobSnapshot{
		state:     s,
		blacklist: filter.NewBlacklist(s.Blacklist.Videos, s.Blacklist.Tags, s.Blacklist.Uploaders),
		boosts:    boosts,
		slots:     make(map[recall.Segment]compiledPlan, len(s.Slots)),
		variants:  map[string]*compiledVariant{},
	}
	for seg, plan := range s.Slots {
		total := 0
		for _, n := range plan {
			total += n
		}
		snap.slots[recall.Segment(seg)] = compiledPlan{slots: plan, total: total}
	}
	for _, name := range slices.Sorted(maps.Keys(s.Experiments)) {
		ce := compiledExperiment{name: name}
		var upTo float64
		for _, v := range s.Experiments[name].Variants {
			upTo += v.Traffic
			cv := &compiledVariant{label: name + ":" + v.Name, upTo: upTo, params: v.Params}
			ce.variants = append(ce.variants, cv)
			snap.variants[cv.label] = cv
		}
		snap.experiments = append(snap.experiments, ce)
	}
	return snap, nil
}

// assign appends to dst the variant of every experiment the user falls in.
func (s *knobSnapshot) assign(userID string, dst []*compiledVariant) []*compiledVariant {
	for i := range s.experiments {
		e := &s.experiments[i]
		b := bucket(e.name, userID)
		for _, v := range e.variants {
			if b < v.upTo {
				dst = append(dst, v)
				break
			}
		}
	}
	return dst
}

// variantLabel joins a user's arms into the label served and logged.
func variantLabel(arms []*compiledVariant) string {
	switch len(arms) {
	case 0:
		return ""
	case 1:
		return arms[0].label
	}
	labels := make([]string, len(arms))
	for i, a := range arms {
		labels[i] = a.label
	}
	return strings.Join(labels, ",")
}

// armParam returns the parameter as set by the user's arms (later wins).
func armParam(arms []*compiledVariant, name string) (float64, bool) {
	var val float64
	found := false
	for _, a := range arms {
		if x, ok := a.params[name]; ok {
			val, found = x, true
		}
	}
	return val, found
}

// bucket maps (experiment, user) to [0,1) with FNV-1a: stable across
// processes and releases, independent between experiments.
func bucket(experiment, user string) float64 {
	const offset, prime = 14695981039346656037, 1099511628211
	h := uint64(offset)
	for i := 0; i < len(experiment); i++ {
		h = (h ^ uint64(experiment[i])) * prime
	}
	h = (h ^ 0) * prime // separator, so ("ab","c") and ("a","bc") differ
	for i := 0; i < len(user); i++ {
		h = (h ^ uint64(user[i])) * prime
	}
	// FNV's low bits mix poorly for short keys; finalise like splitmix64.
	h ^= h >> 30
	h *= 0xbf58476d1ce4e5b9
	h ^= h >> 27
	h *= 0x94d049bb133111eb
	h ^= h >> 31
	return float64(h>>11) / (1 << 53)
}
