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
	samples := simSamples(t, 3000, 6000, 40)
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
	for _, r := range []run{{"adam", 0.002, 1e-6, 0.01, 4, []int{64, 32}, 256}, {"adam", 0.002, 1e-6, 0.01, 16, []int{64, 32}, 256}, {"adam", 0.002, 1e-6, 0.01, 8, []int{32}, 256}, {"adam", 0.002, 1e-6, 0.01, 8, []int{128, 64}, 256}, {"adam", 0.004, 1e-6, 0.01, 8, []int{64, 32}, 1024}, {"adam", 0.001, 1e-6, 0.01, 8, []int{64, 32}, 256}} {
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
