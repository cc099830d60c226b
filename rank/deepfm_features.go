package rank

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/bits"
	"time"

	"reelfeed/event"
	"reelfeed/feature"
	"reelfeed/internal/jsonx"
	"reelfeed/profile"
)

// The DeepFM input fields, in model order. User and context fields come
// first: they are the same for every candidate of a request, so the model
// computes their share once per request.
const (
	fieldUser = iota
	fieldAge
	fieldGender
	fieldRegion
	fieldDevice
	fieldEngagement
	fieldActivity
	fieldVideo
	fieldUploader
	fieldCategory
	fieldTags
	fieldDuration
	fieldFreshness
	fieldCTR
	fieldCompletion
	fieldInteraction
	fieldTagAffinityShort
	fieldTagAffinityLong
	fieldCategoryAffinityShort
	fieldCategoryAffinityLong
	fieldUploaderAffinityShort
	fieldUploaderAffinityLong
	fieldFollows
	deepFMFields // number of fields
)

// deepFMUserFields is the number of leading per-request fields.
const deepFMUserFields = fieldVideo

// FeaturesVersion is the LoggedFeatures version this build writes. Samples
// logged under another version are skipped by training, never misread.
const FeaturesVersion = 1

// LoggedFeatures is the exact, bucketed feature record the DeepFM scorer
// sees for one (request, candidate) pair. The feed logs it with each
// impression (event.Event.Features); training rebuilds the model input
// from it with the same code serving uses, so what the model learns from
// is exactly what it was shown — no training/serving skew, even if
// profiles or real-time counters have moved on since.
type LoggedFeatures struct {
	Version int `json:"v"`

	// User and request context.
	User   string `json:"user"`
	Age    int    `json:"age"` // ageBucket
	Gender string `json:"gender,omitempty"`
	Region string `json:"region,omitempty"`
	Device string `json:"device,omitempty"`
	// Engagement is rateBucket of the user's share of impressions
	// completed or liked, Activity activityBucket of their impression
	// count: user-level propensities that generalise where a user id's
	// embedding has seen too little.
	Engagement int `json:"engagement"`
	Activity   int `json:"activity"`

	// Candidate.
	Video       string   `json:"video"`
	Uploader    string   `json:"uploader,omitempty"`
	Category    string   `json:"category,omitempty"`
	Tags        []string `json:"tags,omitempty"`
	Duration    int      `json:"duration"`    // durationBucket
	Freshness   int      `json:"freshness"`   // freshnessBucket of the video's age at request time
	CTR         int      `json:"ctr"`         // rateBucket of the smoothed day CTR
	Completion  int      `json:"completion"`  // rateBucket of the smoothed day completion rate
	Interaction int      `json:"interaction"` // rateBucket of the smoothed day interaction rate

	// User↔candidate affinities from the profile: [short-term, long-term]
	// affinityBucket of the interest relative to the user's strongest.
	TagAffinity      [2]int `json:"tag_affinity"`
	CategoryAffinity [2]int `json:"category_affinity"`
	UploaderAffinity [2]int `json:"uploader_affinity"`
	Follows          bool   `json:"follows,omitempty"` // the user follows the uploader
}

// FeatureExtractor turns a ranking request into DeepFM features. The zero
// value is not useful; use NewFeatureExtractor.
type FeatureExtractor struct {
	smoothing feature.Smoothing
}

// NewFeatureExtractor returns an extractor that smooths real-time rates
// with s (normally feature.DefaultSmoothing or the configured one).
func NewFeatureExtractor(s feature.Smoothing) FeatureExtractor {
	return FeatureExtractor{smoothing: s}
}

// Extract computes the features of one candidate. It needs no model, so the
// feed can log features before the first model is trained.
func (e FeatureExtractor) Extract(q *Query, it *Item) LoggedFeatures {
	var rf requestFeatures
	e.prepare(q, &rf)
	e.fillItem(&rf, q, it, &rf.lf)
	if it.Video != nil && len(it.Video.Tags) > 0 {
		rf.lf.Tags = append([]string(nil), it.Video.Tags...)
	}
	return rf.lf
}

// Log returns Extract's result as JSON, for event.Event.Features.
func (e FeatureExtractor) Log(q *Query, it *Item) json.RawMessage {
	lf := e.Extract(q, it)
	b, err := json.Marshal(&lf)
	if err != nil { // only strings, ints and bools: cannot fail
		panic(fmt.Sprintf("rank: marshal features: %v", err))
	}
	return b
}

// LogPage appends to dst the features of each item, as Log renders them,
// doing the user-side work once for the page and writing the JSON by hand:
// this runs for every served item.
func (e FeatureExtractor) LogPage(dst []json.RawMessage, q *Query, items []*Item) []json.RawMessage {
	var rf requestFeatures
	e.prepare(q, &rf)
	buf := make([]byte, 0, 512*len(items)) // one backing array for the page
	for _, it := range items {
		e.fillItem(&rf, q, it, &rf.lf)
		start := len(buf)
		buf = rf.lf.appendJSON(buf)
		dst = append(dst, json.RawMessage(buf[start:len(buf):len(buf)]))
	}
	return dst
}

// appendJSON appends lf as json.Marshal would (same keys, same omissions).
func (lf *LoggedFeatures) appendJSON(b []byte) []byte {
	str := func(b []byte, key, v string, omitEmpty bool) []byte {
		if omitEmpty && v == "" {
			return b
		}
		return jsonx.AppendString(jsonx.AppendKey(b, key, false), v)
	}
	num := func(b []byte, key string, v int) []byte {
		return jsonx.AppendInt(jsonx.AppendKey(b, key, false), int64(v))
	}
	pair := func(b []byte, key string, v [2]int) []byte {
		b = append(jsonx.AppendKey(b, key, false), '[')
		b = append(jsonx.AppendInt(b, int64(v[0])), ',')
		return append(jsonx.AppendInt(b, int64(v[1])), ']')
	}
	b = append(b, '{')
	b = jsonx.AppendInt(jsonx.AppendKey(b, "v", true), int64(lf.Version))
	b = str(b, "user", lf.User, false)
	b = num(b, "age", lf.Age)
	b = str(b, "gender", lf.Gender, true)
	b = str(b, "region", lf.Region, true)
	b = str(b, "device", lf.Device, true)
	b = num(b, "engagement", lf.Engagement)
	b = num(b, "activity", lf.Activity)
	b = str(b, "video", lf.Video, false)
	b = str(b, "uploader", lf.Uploader, true)
	b = str(b, "category", lf.Category, true)
	if len(lf.Tags) > 0 {
		b = jsonx.AppendStrings(jsonx.AppendKey(b, "tags", false), lf.Tags)
	}
	b = num(b, "duration", lf.Duration)
	b = num(b, "freshness", lf.Freshness)
	b = num(b, "ctr", lf.CTR)
	b = num(b, "completion", lf.Completion)
	b = num(b, "interaction", lf.Interaction)
	b = pair(b, "tag_affinity", lf.TagAffinity)
	b = pair(b, "category_affinity", lf.CategoryAffinity)
	b = pair(b, "uploader_affinity", lf.UploaderAffinity)
	if lf.Follows {
		b = append(jsonx.AppendKey(b, "follows", false), "true"...)
	}
	return append(b, '}')
}

// ErrFeaturesVersion reports logged features from another build's format.
var ErrFeaturesVersion = errors.New("rank: unsupported logged features version")

// ParseLoggedFeatures decodes features logged by Log.
func ParseLoggedFeatures(raw json.RawMessage) (LoggedFeatures, error) {
	var lf LoggedFeatures
	if len(raw) == 0 {
		return lf, errors.New("rank: no logged features")
	}
	if err := json.Unmarshal(raw, &lf); err != nil {
		return lf, fmt.Errorf("rank: logged features: %w", err)
	}
	if lf.Version != FeaturesVersion {
		return lf, fmt.Errorf("%w: %d", ErrFeaturesVersion, lf.Version)
	}
	return lf, nil
}

// requestFeatures is the per-request part of extraction: the user fields
// and what item extraction needs from the profile.
type requestFeatures struct {
	lf LoggedFeatures
	// scales normalise interests by the user's strongest one per map:
	// short/long tags, categories, uploaders; 0 for an empty map.
	scales  [6]float64
	p       *profile.Profile
	follows []string
	// followSet is built for users following many uploaders, so each
	// candidate costs a map lookup rather than a scan; reused across
	// requests by the scorer's scratch.
	followSet map[string]struct{}
}

// followSetMin is the follow count from which a set beats a linear scan.
const followSetMin = 16

func (e FeatureExtractor) prepare(q *Query, rf *requestFeatures) {
	rf.lf = LoggedFeatures{Version: FeaturesVersion, User: q.UserID, Region: q.Region, Device: q.Device}
	rf.follows = nil
	if u := q.User; u != nil {
		rf.lf.Age = ageBucket(u.Age)
		rf.lf.Gender = u.Gender
		if rf.lf.Region == "" {
			rf.lf.Region = u.Region
		}
		if rf.lf.Device == "" {
			rf.lf.Device = u.Device
		}
		rf.follows = u.Follows
	}
	if len(rf.follows) >= followSetMin {
		if rf.followSet == nil {
			rf.followSet = make(map[string]struct{}, len(rf.follows))
		}
		clear(rf.followSet)
		for _, f := range rf.follows {
			rf.followSet[f] = struct{}{}
		}
	}
	rf.p = q.Profile
	rf.scales = [6]float64{}
	if p := rf.p; p != nil {
		imps := p.Counts[event.Impression]
		rf.lf.Activity = activityBucket(imps)
		if imps > 0 {
			pos := p.Counts[event.Complete] + p.Counts[event.Like]
			rf.lf.Engagement = rateBucket((float64(pos) + engagementPrior*engagementStrength) / (float64(imps) + engagementStrength))
		}
		for i, m := range [6]map[string]float64{
			p.ShortTerm.Tags, p.LongTerm.Tags,
			p.ShortTerm.Categories, p.LongTerm.Categories,
			p.ShortTerm.Uploaders, p.LongTerm.Uploaders,
		} {
			var top float64
			for _, v := range m {
				top = max(top, math.Abs(v))
			}
			if top > 0 {
				rf.scales[i] = 1 / top
			}
		}
	}
}

func (rf *requestFeatures) followed(uploader string) bool {
	if len(rf.follows) >= followSetMin {
		_, ok := rf.followSet[uploader]
		return ok
	}
	for _, f := range rf.follows {
		if f == uploader {
			return true
		}
	}
	return false
}

// fillItem writes the candidate's fields into lf (whose user fields are
// left as they are). lf.Tags aliases the video's tags.
func (e FeatureExtractor) fillItem(rf *requestFeatures, q *Query, it *Item, lf *LoggedFeatures) {
	v := it.Video
	lf.Video, lf.Uploader, lf.Category, lf.Tags = "", "", "", nil
	lf.Duration, lf.Freshness = 0, 0
	lf.TagAffinity, lf.CategoryAffinity, lf.UploaderAffinity = [2]int{}, [2]int{}, [2]int{}
	lf.Follows = false
	if v != nil {
		lf.Video, lf.Uploader, lf.Category, lf.Tags = v.ID, v.UploaderID, v.Category, v.Tags
		lf.Duration = durationBucket(v.DurationMs)
		if !v.PublishedAt.IsZero() {
			lf.Freshness = freshnessBucket(q.Now.Sub(v.PublishedAt))
		}
		lf.Follows = rf.followed(v.UploaderID)
		if p := rf.p; p != nil {
			if len(v.Tags) > 0 {
				var s, l float64
				for _, t := range v.Tags {
					s += p.ShortTerm.Tags[t]
					l += p.LongTerm.Tags[t]
				}
				norm := 1 / math.Sqrt(float64(len(v.Tags)))
				lf.TagAffinity = [2]int{affinityBucket(s * norm * rf.scales[0]), affinityBucket(l * norm * rf.scales[1])}
			}
			lf.CategoryAffinity = [2]int{
				affinityBucket(p.ShortTerm.Categories[v.Category] * rf.scales[2]),
				affinityBucket(p.LongTerm.Categories[v.Category] * rf.scales[3]),
			}
			lf.UploaderAffinity = [2]int{
				affinityBucket(p.ShortTerm.Uploaders[v.UploaderID] * rf.scales[4]),
				affinityBucket(p.LongTerm.Uploaders[v.UploaderID] * rf.scales[5]),
			}
		}
	} else {
		lf.Video = it.Stats.VideoID
	}
	ctr, completion, interaction := e.rates(&it.Stats)
	lf.CTR, lf.Completion, lf.Interaction = rateBucket(ctr), rateBucket(completion), rateBucket(interaction)
}

// rates smooths the last day's rates towards the video's own lifetime
// rates (themselves smoothed towards the global prior), so a video with
// little recent traffic keeps its long-run reputation.
func (e FeatureExtractor) rates(st *feature.Stats) (ctr, completion, interaction float64) {
	sm := e.smoothing
	life := feature.Smoothing{
		PriorCTR:         sm.CTR(st.Lifetime),
		PriorCompletion:  sm.CompletionRate(st.Lifetime),
		PriorInteraction: sm.InteractionRate(st.Lifetime),
		Strength:         sm.Strength,
	}
	return life.CTR(st.Day), life.CompletionRate(st.Day), life.InteractionRate(st.Day)
}

// Bucketing. Bucket 0 always means "unknown".

func ageBucket(age int) int {
	switch {
	case age <= 0:
		return 0
	case age < 18:
		return 1
	case age < 25:
		return 2
	case age < 35:
		return 3
	case age < 45:
		return 4
	case age < 55:
		return 5
	}
	return 6
}

var durationBounds = [...]int64{5e3, 10e3, 15e3, 30e3, 60e3, 120e3, 300e3, 600e3} // ms

func durationBucket(ms int64) int {
	if ms <= 0 {
		return 0
	}
	for i, b := range durationBounds {
		if ms <= b {
			return i + 1
		}
	}
	return len(durationBounds) + 1
}

var freshnessBounds = [...]time.Duration{
	time.Hour, 6 * time.Hour, 24 * time.Hour, 3 * 24 * time.Hour,
	7 * 24 * time.Hour, 30 * 24 * time.Hour, 90 * 24 * time.Hour,
}

func freshnessBucket(age time.Duration) int {
	for i, b := range freshnessBounds {
		if age < b {
			return i + 1
		}
	}
	return len(freshnessBounds) + 1
}

// rateBuckets splits rates in [0, 1] into buckets 1..rateBuckets on a
// square-root scale: engagement rates are mostly small, where the detail
// matters (0.01 and 0.04 land in buckets 3 and 5; 0.5 and 0.6 in 15 and 16).
const rateBuckets = 20

func rateBucket(r float64) int {
	if !(r > 0) {
		return 1
	}
	return min(rateBuckets, 1+int(math.Sqrt(r)*rateBuckets))
}

// The user engagement rate is smoothed towards a typical rate, so a user
// with two impressions is not bucketed at 0% or 50%.
const (
	engagementPrior    = 0.1
	engagementStrength = 10
)

// activityBucket is 0 for no impressions, else 1 + ⌊log2 n⌋ (at most 24).
func activityBucket(impressions int64) int {
	if impressions <= 0 {
		return 0
	}
	return min(24, 1+bits.Len64(uint64(impressions))-1)
}

// affinityBucket maps a relative affinity in [-1, 1] to -10..10, keeping 0
// for "no interest recorded".
func affinityBucket(r float64) int {
	switch {
	case r > 0:
		return min(10, int(math.Ceil(r*10)))
	case r < 0:
		return max(-10, int(math.Floor(r*10)))
	}
	return 0
}

// Hashing: every feature id is FNV-1a over (field, value), so equal values
// in different fields get unrelated ids.

const (
	fnvOffset = 2166136261
	fnvPrime  = 16777619
)

func hashString(field byte, s string) uint32 {
	h := uint32(fnvOffset)
	h = (h ^ uint32(field)) * fnvPrime
	for i := 0; i < len(s); i++ {
		h = (h ^ uint32(s[i])) * fnvPrime
	}
	return h
}

// hashInt hashes a small integer, with sub telling apart several integers
// logged in one field (short- versus long-term affinity).
func hashInt(field, sub byte, v int) uint32 {
	h := uint32(fnvOffset)
	h = (h ^ uint32(field)) * fnvPrime
	h = (h ^ uint32(sub)) * fnvPrime
	u := uint64(int64(v))
	for range 8 {
		h = (h ^ uint32(u&0xff)) * fnvPrime
		u >>= 8
	}
	return h
}

func one(row []uint32, id uint32) []uint32 { return append(row[:0], id) }

// putUserRows writes the hashed user fields into rows[0:deepFMUserFields],
// reusing each row's backing array.
func (lf *LoggedFeatures) putUserRows(rows [][]uint32) {
	rows[fieldUser] = one(rows[fieldUser], hashString(fieldUser, lf.User))
	rows[fieldAge] = one(rows[fieldAge], hashInt(fieldAge, 0, lf.Age))
	rows[fieldGender] = one(rows[fieldGender], hashString(fieldGender, lf.Gender))
	rows[fieldRegion] = one(rows[fieldRegion], hashString(fieldRegion, lf.Region))
	rows[fieldDevice] = one(rows[fieldDevice], hashString(fieldDevice, lf.Device))
	rows[fieldEngagement] = one(rows[fieldEngagement], hashInt(fieldEngagement, 0, lf.Engagement))
	rows[fieldActivity] = one(rows[fieldActivity], hashInt(fieldActivity, 0, lf.Activity))
}

// putItemRows writes the hashed candidate fields into rows[deepFMUserFields:].
func (lf *LoggedFeatures) putItemRows(rows [][]uint32) {
	rows[fieldVideo] = one(rows[fieldVideo], hashString(fieldVideo, lf.Video))
	rows[fieldUploader] = one(rows[fieldUploader], hashString(fieldUploader, lf.Uploader))
	rows[fieldCategory] = one(rows[fieldCategory], hashString(fieldCategory, lf.Category))
	tags := rows[fieldTags][:0]
	for _, t := range lf.Tags {
		tags = append(tags, hashString(fieldTags, t))
	}
	rows[fieldTags] = tags // no tags: an empty field contributes nothing
	rows[fieldDuration] = one(rows[fieldDuration], hashInt(fieldDuration, 0, lf.Duration))
	rows[fieldFreshness] = one(rows[fieldFreshness], hashInt(fieldFreshness, 0, lf.Freshness))
	rows[fieldCTR] = one(rows[fieldCTR], hashInt(fieldCTR, 0, lf.CTR))
	rows[fieldCompletion] = one(rows[fieldCompletion], hashInt(fieldCompletion, 0, lf.Completion))
	rows[fieldInteraction] = one(rows[fieldInteraction], hashInt(fieldInteraction, 0, lf.Interaction))
	rows[fieldTagAffinityShort] = one(rows[fieldTagAffinityShort], hashInt(fieldTagAffinityShort, 0, lf.TagAffinity[0]))
	rows[fieldTagAffinityLong] = one(rows[fieldTagAffinityLong], hashInt(fieldTagAffinityLong, 0, lf.TagAffinity[1]))
	rows[fieldCategoryAffinityShort] = one(rows[fieldCategoryAffinityShort], hashInt(fieldCategoryAffinityShort, 0, lf.CategoryAffinity[0]))
	rows[fieldCategoryAffinityLong] = one(rows[fieldCategoryAffinityLong], hashInt(fieldCategoryAffinityLong, 0, lf.CategoryAffinity[1]))
	rows[fieldUploaderAffinityShort] = one(rows[fieldUploaderAffinityShort], hashInt(fieldUploaderAffinityShort, 0, lf.UploaderAffinity[0]))
	rows[fieldUploaderAffinityLong] = one(rows[fieldUploaderAffinityLong], hashInt(fieldUploaderAffinityLong, 0, lf.UploaderAffinity[1]))
	follows := 0
	if lf.Follows {
		follows = 1
	}
	rows[fieldFollows] = one(rows[fieldFollows], hashInt(fieldFollows, 0, follows))
}

// newRows returns model input rows with room for typical field sizes.
func newRows() [][]uint32 {
	rows := make([][]uint32, deepFMFields)
	for f := range rows {
		rows[f] = make([]uint32, 0, 3)
	}
	rows[fieldTags] = make([]uint32, 0, 16)
	return rows
}

// Rows returns the model input for these features: what training learns
// from and, field for field, what serving scores.
func (lf *LoggedFeatures) Rows() [][]uint32 {
	rows := newRows()
	lf.putUserRows(rows)
	lf.putItemRows(rows)
	return rows
}
