package rank

import (
	"context"
	"fmt"
	"sort"
	"testing"
	"time"

	"reelfeed/event"
	"reelfeed/feature"
	"reelfeed/profile"
	"reelfeed/rank/model"
	"reelfeed/sim/world"
)

func simSamples(t *testing.T, users, videos, hist int) []Sample {
	w, err := world.Generate(world.Config{Seed: 3, Users: users, Videos: videos, HistoryPerUser: hist, Start: time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)})
	if err != nil {
		t.Fatal(err)
	}
	type exp struct {
		u *world.User
		x world.Exposure
	}
	var all []exp
	for _, u := range w.Users {
		for _, x := range w.History(u) {
			all = append(all, exp{u, x})
		}
	}
	sort.SliceStable(all, func(i, j int) bool { return all[i].x.At.Before(all[j].x.At) })
	weights := profile.DefaultConfig().Weights
	profiles := map[string]*profile.Profile{}
	stats := map[string]*feature.Stats{}
	fx := NewFeatureExtractor(feature.DefaultSmoothing())
	var out []Sample
	for _, e := range all {
		uid := e.u.Meta.ID
		p := profiles[uid]
		if p == nil {
			p = emptyProfile(uid)
			profiles[uid] = p
		}
		v := &e.x.Video.Meta
		st := stats[v.ID]
		if st == nil {
			st = &feature.Stats{VideoID: v.ID}
			stats[v.ID] = st
		}
		user := e.u.Meta
		q := &Query{UserID: uid, Profile: p, User: &user, Region: user.Region, Device: user.Device, Now: e.x.At}
		it := Item{Video: v, Stats: *st}
		r := e.x.Response
		var label float32
		if r.Complete || r.Like {
			label = 1
		}
		out = append(out, Sample{UserID: uid, VideoID: v.ID, TS: e.x.At, Label: label, Features: fx.Log(q, &it)})
		for _, ev := range e.x.Events(uid) {
			wt := weights[ev.Type]
			p.Counts[ev.Type]++
			st.Lifetime[ev.Type]++
			st.Day[ev.Type]++
			for _, in := range []*profile.Interests{&p.LongTerm, &p.ShortTerm} {
				in.Categories[v.Category] += wt
				in.Uploaders[v.UploaderID] += wt
				for _, tg := range v.Tags {
					in.Tags[tg] += wt
				}
			}
			_ = event.Impression
		}
	}
	return out
}

func TestTmpTune(t *testing.T) {
	samples := simSamples(t, 12000, 6000, 12)
	var pos int
	for _, s := range samples {
		if s.Label == 1 {
			pos++
		}
	}
	fmt.Println("samples", len(samples), "pos rate", float64(pos)/float64(len(samples)))
	type run struct {
		opt  string
		lr   float32
		l2   float32
		std  float32
		dim  int
		hid  []int
		bs   int
	}
	for _, r := range []run{{"adam", 0.002, 1e-6, 0.01, 8, []int{64, 32}, 256}, {"adam", 0.002, 1e-6, 0.05, 8, []int{64, 32}, 256}} {
			cfg := DefaultTrainConfig()
			cfg.ModelsDir = t.TempDir()
			cfg.LearningRate = r.lr
			cfg.Optimizer = r.opt
			cfg.L2 = r.l2
			cfg.Arch.InitStd = r.std
			cfg.Arch.Dim = r.dim
			cfg.Arch.Hidden = r.hid
			cfg.BatchSize = r.bs
			t0 := time.Now()
			rep, err := Train(context.Background(), samples, cfg)
			if err != nil {
				t.Fatal(err)
			}
			fmt.Printf("%+v: deep %.4f/%.4f lr %.4f/%.4f fm %.4f/%.4f  %v\n", r, rep.AUC, rep.LogLoss, rep.Baselines.LR.AUC, rep.Baselines.LR.LogLoss, rep.Baselines.FM.AUC, rep.Baselines.FM.LogLoss, time.Since(t0))
	}
}

func TestTmpCurve(t *testing.T) {
	samples := simSamples(t, 12000, 6000, 12)
	data, _ := buildDataset(samples)
	n := data.Len()
	cut := n * 8 / 10
	vcut := cut * 9 / 10
	fit, valid, hold := data.Slice(0, vcut), data.Slice(vcut, cut), data.Slice(cut, n)
	_ = hold
	type run struct {
		kind model.Kind
		lr   float32
		hid  []int
		bs   int
		std  float32
		sls  float32
	}
	for _, r := range []run{{model.DeepFM, 0.002, []int{64, 32}, 256, 0.01, 1e-9}, {model.DeepFM, 0.002, []int{64, 32}, 256, 0.01, 0.1}, {model.LR, 0.002, nil, 256, 0.01, 1}} {
		a := DefaultTrainConfig().Arch
		a.Hidden = r.hid
		a.InitStd = r.std
		m, _ := model.New(featureModelConfig(r.kind, a, 1))
		tc := model.DefaultTrainConfig()
		tc.LearningRate = r.lr
		tc.BatchSize = r.bs
		tc.Epochs = 1
		tc.SparseLRScale = r.sls
		tr, _ := model.NewTrainer(m, tc)
		line := fmt.Sprintf("%v lr %v hid %v sls %v:", r.kind, r.lr, r.hid, r.sls)
		for e := 0; e < 5; e++ {
			if e == 1 {
				tr.SetSparseLRScale(r.sls)
			}
			tl, _ := tr.Fit(context.Background(), fit)
			v := model.Evaluate(m, valid)
			line += fmt.Sprintf(" [%.4f v%.4f/%.4f]", tl, v.LogLoss, v.AUC)
		}
		fmt.Println(line)
	}
	for _, r := range []run{ {model.DeepFM, 0.002, []int{}, 256, 0.01, 0}} {
		a := DefaultTrainConfig().Arch
		a.Hidden = r.hid
		a.InitStd = r.std
		m, _ := model.New(featureModelConfig(r.kind, a, 1))
		tc := model.DefaultTrainConfig()
		tc.LearningRate = r.lr
		tc.BatchSize = r.bs
		tc.Epochs = 1
		tr, _ := model.NewTrainer(m, tc)
		line := fmt.Sprintf("%v lr %v hid %v bs %d:", r.kind, r.lr, r.hid, r.bs)
		for e := 0; e < 5; e++ {
			tl, _ := tr.Fit(context.Background(), fit)
			v := model.Evaluate(m, valid)
			line += fmt.Sprintf(" [%.4f v%.4f/%.4f]", tl, v.LogLoss, v.AUC)
		}
		fmt.Println(line)
	}
}

func TestTmpAblate(t *testing.T) {
	samples := simSamples(t, 1000, 6000, 200)
	build := func(drop []int) *model.Dataset {
		d := model.NewDataset(deepFMFields)
		rows := newRows()
		for _, s := range samples {
			lf, _ := ParseLoggedFeatures(s.Features)
			lf.putUserRows(rows)
			lf.putItemRows(rows)
			for _, f := range drop {
				rows[f] = rows[f][:0]
			}
			d.Add(model.Example{Fields: rows, Label: s.Label})
		}
		return d
	}
	for _, drop := range [][]int{{fieldActivity}, {fieldActivity, fieldEngagement}, {fieldActivity, fieldFreshness}} {
		data := build(drop)
		n := data.Len()
		cut := n * 8 / 10
		vcut := cut * 9 / 10
		fit, valid := data.Slice(0, vcut), data.Slice(vcut, cut)
		a := DefaultTrainConfig().Arch
		a.InitStd = 0.01
		m, _ := model.New(featureModelConfig(model.DeepFM, a, 1))
		tc := model.DefaultTrainConfig()
		tc.Epochs = 1
		tr, _ := model.NewTrainer(m, tc)
		line := fmt.Sprintf("drop %v:", drop)
		for e := 0; e < 3; e++ {
			tl, _ := tr.Fit(context.Background(), fit)
			v := model.Evaluate(m, valid)
			line += fmt.Sprintf(" [%.4f v%.4f/%.4f]", tl, v.LogLoss, v.AUC)
		}
		fmt.Println(line)
		lrm, _ := model.New(featureModelConfig(model.LR, a, 1))
		lt, _ := model.NewTrainer(lrm, tc)
		for e := 0; e < 3; e++ {
			lt.Fit(context.Background(), fit)
		}
		fmt.Println("   lr:", model.Evaluate(lrm, valid))
	}
}
