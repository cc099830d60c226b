package rank

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"

	"reelfeed/feature"
	"reelfeed/rank/model"
)

// DeepFMName is the name the DeepFM scorer reports.
const DeepFMName = "deepfm"

// Debug part names the DeepFM scorer writes into Item.Parts.
const (
	PartBias     = "bias"
	PartFMFirst  = "fm_first"
	PartFMSecond = "fm_second"
	PartDNN      = "dnn"
	PartLogit    = "logit"
)

// DeepFMScorer scores candidates with a DeepFM (or LR/FM) model over the
// fields of LoggedFeatures. Per request it hashes the user fields and lets
// the model precompute their share once; per candidate it extracts and
// hashes the item fields into reused scratch rows, so scoring allocates
// nothing per candidate (Item.Parts under Query.Debug aside).
//
// It is safe for concurrent use. Online learning (see Live) updates the
// model in place under mu; Score holds the read lock for a whole request,
// so every candidate of a request sees the same parameters.
type DeepFMScorer struct {
	mu       sync.RWMutex
	model    *model.Model
	features FeatureExtractor
	scratch  sync.Pool // *deepFMScratch
}

type deepFMScratch struct {
	batch *model.Batch
	rows  [][]uint32
	req   requestFeatures
}

// NewDeepFMScorer wraps m, which must have been trained on this build's
// feature layout; s smooths the real-time rates exactly as when the
// features were logged.
func NewDeepFMScorer(m *model.Model, s feature.Smoothing) (*DeepFMScorer, error) {
	if f := m.Config().Fields; f != deepFMFields {
		return nil, fmt.Errorf("rank: model has %d fields, this build's features have %d", f, deepFMFields)
	}
	sc := &DeepFMScorer{model: m, features: NewFeatureExtractor(s)}
	sc.scratch.New = func() any {
		return &deepFMScratch{batch: m.NewBatch(deepFMUserFields), rows: newRows()}
	}
	return sc, nil
}

// Name implements Scorer.
func (s *DeepFMScorer) Name() string { return DeepFMName }

// Log returns the features of one served item as JSON for its impression.
func (s *DeepFMScorer) Log(q *Query, it *Item) json.RawMessage { return s.features.Log(q, it) }

// ctxCheckEvery is how many candidates are scored between deadline checks.
const ctxCheckEvery = 128

// Score implements Scorer: Item.Score is the predicted probability of a
// positive outcome (complete or like).
func (s *DeepFMScorer) Score(ctx context.Context, q *Query, items []Item) error {
	if len(items) == 0 {
		return nil
	}
	s.mu.RLock() // before Get: a new scratch reads the parameters
	defer s.mu.RUnlock()
	sc := s.scratch.Get().(*deepFMScratch)
	defer s.scratch.Put(sc)

	req := &sc.req
	s.features.prepare(q, req)
	lf := &req.lf
	lf.putUserRows(sc.rows)
	sc.batch.SetShared(sc.rows)
	for i := range items {
		if i%ctxCheckEvery == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		it := &items[i]
		s.features.fillItem(req, q, it, lf)
		lf.putItemRows(sc.rows)
		p := sc.batch.Score(sc.rows)
		it.Score = float64(p.Prob())
		if q.Debug {
			it.Parts = deepFMParts(p, lf)
		}
	}
	lf.Tags = nil // do not keep the last video's tags alive in the pool
	return nil
}

func deepFMParts(p model.Parts, lf *LoggedFeatures) map[string]float64 {
	return map[string]float64{
		PartBias:                  float64(p.Bias),
		PartFMFirst:               float64(p.First),
		PartFMSecond:              float64(p.Second),
		PartDNN:                   float64(p.DNN),
		PartLogit:                 float64(p.Logit),
		"user_engagement_bucket":  float64(lf.Engagement),
		"user_activity_bucket":    float64(lf.Activity),
		"duration_bucket":         float64(lf.Duration),
		"freshness_bucket":        float64(lf.Freshness),
		"ctr_bucket":              float64(lf.CTR),
		"completion_bucket":       float64(lf.Completion),
		"interaction_bucket":      float64(lf.Interaction),
		"tag_affinity_short":      float64(lf.TagAffinity[0]),
		"tag_affinity_long":       float64(lf.TagAffinity[1]),
		"category_affinity_short": float64(lf.CategoryAffinity[0]),
		"category_affinity_long":  float64(lf.CategoryAffinity[1]),
		"uploader_affinity_short": float64(lf.UploaderAffinity[0]),
		"uploader_affinity_long":  float64(lf.UploaderAffinity[1]),
		"follows_uploader":        b2f(lf.Follows),
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
