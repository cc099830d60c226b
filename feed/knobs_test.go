package feed

import (
	"errors"
	"fmt"
	"math"
	"reflect"
	"testing"
)

func TestKnobStateValidate(t *testing.T) {
	valid := func() KnobState {
		s := DefaultKnobState()
		s.Blacklist = BlacklistState{Videos: []string{"v1"}, Tags: []string{"gore"}, Uploaders: []string{"u1"}}
		s.Boosts = BoostState{Category: map[string]float64{"comedy": 1.2}, Tag: map[string]float64{"cats": 0.8}}
		s.Experiments = map[string]Experiment{"ranker": {Variants: []Variant{
			{Name: "a", Traffic: 0.5, Params: map[string]float64{"formula.ctr": 2}},
			{Name: "b", Traffic: 0.5, Params: map[string]float64{"quota.tag": 300, "slots.active.tag": 4, "caps.category": 0.4}},
		}}}
		return s
	}
	tests := []struct {
		name  string
		edit  func(*KnobState)
		field string // "" = valid
	}{
		{"defaults and a full state are valid", func(*KnobState) {}, ""},
		{"blacklisted video id with whitespace", func(s *KnobState) { s.Blacklist.Videos = []string{"a b"} }, "blacklist.videos[0]"},
		{"boost factor zero", func(s *KnobState) { s.Boosts.Category["comedy"] = 0 }, "boosts.category.comedy"},
		{"boost factor too big", func(s *KnobState) { s.Boosts.Tag["cats"] = 11 }, "boosts.tag.cats"},
		{"unknown segment", func(s *KnobState) { s.Slots["vip"] = SlotPlan{"hot": 1} }, "slots.vip"},
		{"negative slots", func(s *KnobState) { s.Slots["new"] = SlotPlan{"hot": -1} }, "slots.new.hot"},
		{"empty plan", func(s *KnobState) { s.Slots["new"] = SlotPlan{"hot": 0} }, "slots.new"},
		{"traffic over 1", func(s *KnobState) { s.Experiments["ranker"].Variants[0].Traffic = 0.7 }, "experiments.ranker.variants"},
		{"negative traffic", func(s *KnobState) { s.Experiments["ranker"].Variants[0].Traffic = -0.1 }, "experiments.ranker.variants[0].traffic"},
		{"duplicate variant", func(s *KnobState) { s.Experiments["ranker"].Variants[1].Name = "a" }, "experiments.ranker.variants[1].name"},
		{"unknown parameter", func(s *KnobState) { s.Experiments["ranker"].Variants[0].Params["colour"] = 1 }, "experiments.ranker.variants[0].params.colour"},
		{"unknown formula weight", func(s *KnobState) { s.Experiments["ranker"].Variants[0].Params["formula.nope"] = 1 }, "experiments.ranker.variants[0].params.formula.nope"},
		{"fractional quota", func(s *KnobState) { s.Experiments["ranker"].Variants[1].Params["quota.tag"] = 1.5 }, "experiments.ranker.variants[1].params.quota.tag"},
		{"cap out of range", func(s *KnobState) { s.Experiments["ranker"].Variants[1].Params["caps.category"] = 2 }, "experiments.ranker.variants[1].params.caps.category"},
		{"NaN parameter", func(s *KnobState) { s.Experiments["ranker"].Variants[0].Params["formula.ctr"] = math.NaN() }, "experiments.ranker.variants[0].params.formula.ctr"},
		{"experiment name with a comma", func(s *KnobState) { s.Experiments["a,b"] = Experiment{Variants: []Variant{{Name: "x", Traffic: 1}}} }, "experiments.a,b"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := valid()
			tc.edit(&s)
			bad := s.Validate()
			if tc.field == "" {
				if len(bad) > 0 {
					t.Fatalf("valid state rejected: %v", bad)
				}
				return
			}
			if bad[tc.field] == "" {
				t.Fatalf("want a problem on %q, got %v", tc.field, bad)
			}
			var ve *ValidationError
			if err := mustKnobs(t, DefaultKnobState()).Set(s); !errors.As(err, &ve) {
				t.Fatalf("Set accepted an invalid state: %v", err)
			}
		})
	}
}

func TestKnobsSetGetNormalisesAndCopies(t *testing.T) {
	k := mustKnobs(t, DefaultKnobState())
	s := DefaultKnobState()
	s.Blacklist.Tags = []string{" Gore", "gore", "Spam"}
	s.Boosts.Category = map[string]float64{"Comedy": 1.2}
	if err := k.Set(s); err != nil {
		t.Fatal(err)
	}
	got := k.Get()
	if !reflect.DeepEqual(got.Blacklist.Tags, []string{"gore", "spam"}) || got.Boosts.Category["comedy"] != 1.2 {
		t.Fatalf("not normalised: %+v", got)
	}
	got.Blacklist.Tags[0] = "changed"
	got.Slots["new"]["hot"] = 99
	again := k.Get()
	if again.Blacklist.Tags[0] != "gore" || again.Slots["new"]["hot"] == 99 {
		t.Fatal("Get returned shared state")
	}
	snap := k.snapshot()
	if !snap.blacklist.Blocks(videoWithTags("gore")) || snap.boosts.Factor("comedy", nil) != 1.2 {
		t.Fatal("compiled snapshot does not reflect the state")
	}
}

func TestExperimentAssignment(t *testing.T) {
	s := DefaultKnobState()
	s.Experiments = map[string]Experiment{
		"ranker": {Variants: []Variant{
			{Name: "a", Traffic: 0.3, Params: map[string]float64{"formula.ctr": 2}},
			{Name: "b", Traffic: 0.2, Params: map[string]float64{"formula.ctr": 3}},
		}},
		"slots": {Variants: []Variant{{Name: "on", Traffic: 0.5, Params: map[string]float64{"formula.ctr": 5}}}},
	}
	k := mustKnobs(t, s)
	snap := k.snapshot()
	counts := map[string]int{}
	both := 0
	const users = 20000
	for i := range users {
		user := fmt.Sprintf("user-%d", i)
		arms := snap.assign(user, nil)
		again := snap.assign(user, nil)
		if variantLabel(arms) != variantLabel(again) {
			t.Fatal("assignment is not stable")
		}
		for _, a := range arms {
			counts[a.label]++
		}
		if len(arms) == 2 {
			both++
			// Later experiment (by name) wins a shared parameter.
			if v, ok := k.Param(variantLabel(arms), "formula.ctr"); !ok || v != 5 {
				t.Fatalf("Param(%q) = %v, %v", variantLabel(arms), v, ok)
			}
		}
	}
	for label, share := range map[string]float64{"ranker:a": 0.3, "ranker:b": 0.2, "slots:on": 0.5} {
		got := float64(counts[label]) / users
		if math.Abs(got-share) > 0.02 {
			t.Errorf("%s got %.3f of users, want %.2f", label, got, share)
		}
	}
	// Independent experiments: about half of ranker's 50% are also in slots.
	if got := float64(both) / users; math.Abs(got-0.25) > 0.02 {
		t.Errorf("%.3f of users in both experiments, want ~0.25 (independent hashing)", got)
	}
	if _, ok := k.Param("", "formula.ctr"); ok {
		t.Fatal("empty variant has parameters")
	}
	if v, ok := k.Param("ranker:b", "formula.ctr"); !ok || v != 3 {
		t.Fatalf("Param(ranker:b) = %v, %v", v, ok)
	}
}
