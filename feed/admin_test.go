package feed

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"reelfeed/catalog"
	"reelfeed/internal/httpx"
)

func videoWithTags(tags ...string) *catalog.Video {
	return &catalog.Video{ID: "v", UploaderID: "u", Tags: tags, Category: "c", Kind: catalog.KindVideo}
}

func TestAdminHandler(t *testing.T) {
	knobs := mustKnobs(t, DefaultKnobState())
	published := 0
	srv := httptest.NewServer(AdminHandler(knobs, func(_ context.Context, s KnobState) error {
		published++
		return knobs.Set(s)
	}))
	defer srv.Close()

	do := func(method, path, body string) (int, []byte) {
		t.Helper()
		req, _ := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, b
	}
	tests := []struct {
		name, method, path, body string
		status                   int
		badField                 string
		check                    func(s KnobState) bool
	}{
		{"blacklist a video", "PUT", "/blacklist/video/v%2F1", "", 200, "",
			func(s KnobState) bool { return slices.Contains(s.Blacklist.Videos, "v/1") }},
		{"blacklist a tag (canonical)", "PUT", "/blacklist/tag/Gore", "", 200, "",
			func(s KnobState) bool { return slices.Contains(s.Blacklist.Tags, "gore") }},
		{"blacklist an uploader", "PUT", "/blacklist/uploader/spammer", "", 200, "",
			func(s KnobState) bool { return slices.Contains(s.Blacklist.Uploaders, "spammer") }},
		{"unknown blacklist kind", "PUT", "/blacklist/planet/mars", "", 400, "kind", nil},
		{"unblacklist a tag", "DELETE", "/blacklist/tag/GORE", "", 200, "",
			func(s KnobState) bool { return !slices.Contains(s.Blacklist.Tags, "gore") }},
		{"unblacklist what is not there", "DELETE", "/blacklist/video/nope", "", 404, "", nil},
		{"boost a category +20%", "PUT", "/boosts/category/Comedy", `{"factor": 1.2}`, 200, "",
			func(s KnobState) bool { return s.Boosts.Category["comedy"] == 1.2 }},
		{"boost factor out of range", "PUT", "/boosts/tag/cats", `{"factor": 0}`, 400, "factor", nil},
		{"boost factor missing", "PUT", "/boosts/tag/cats", `{}`, 400, "factor", nil},
		{"boost unknown kind", "PUT", "/boosts/planet/mars", `{"factor": 2}`, 400, "kind", nil},
		{"boost body not JSON", "PUT", "/boosts/tag/cats", `factor=2`, 400, "body", nil},
		{"remove a boost", "DELETE", "/boosts/category/comedy", "", 200, "",
			func(s KnobState) bool { _, ok := s.Boosts.Category["comedy"]; return !ok }},
		{"slot plan", "PUT", "/slots/active", `{"tag": 6, "hot": 4}`, 200, "",
			func(s KnobState) bool { return s.Slots["active"]["tag"] == 6 && len(s.Slots["active"]) == 2 }},
		{"slot plan for an unknown segment", "PUT", "/slots/vip", `{"tag": 6}`, 400, "segment", nil},
		{"negative slots", "PUT", "/slots/new", `{"tag": -1}`, 400, "tag", nil},
		{"experiment", "PUT", "/experiments/ranker", `{"variants": [{"name": "b", "traffic": 0.5, "params": {"formula.ctr": 2}}]}`, 200, "",
			func(s KnobState) bool { return s.Experiments["ranker"].Variants[0].Params["formula.ctr"] == 2 }},
		{"experiment with a bad parameter", "PUT", "/experiments/ranker", `{"variants": [{"name": "b", "traffic": 0.5, "params": {"colour": 2}}]}`, 400,
			"variants[0].params.colour", nil},
		{"experiment with unknown field", "PUT", "/experiments/ranker", `{"variantz": []}`, 400, "body", nil},
		{"delete experiment", "DELETE", "/experiments/ranker", "", 200, "",
			func(s KnobState) bool { _, ok := s.Experiments["ranker"]; return !ok }},
		{"delete unknown experiment", "DELETE", "/experiments/ranker", "", 404, "", nil},
		{"whole state", "PUT", "/knobs", `{"blacklist": {"videos": ["x"]}, "slots": {"new": {"hot": 10}}}`, 200, "",
			func(s KnobState) bool {
				return slices.Equal(s.Blacklist.Videos, []string{"x"}) && len(s.Slots) == 1 && len(s.Experiments) == 0
			}},
		{"whole state invalid", "PUT", "/knobs", `{"slots": {"new": {"hot": -3}}}`, 400, "slots.new.hot", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := published
			status, body := do(tc.method, tc.path, tc.body)
			if status != tc.status {
				t.Fatalf("%s %s: status %d, want %d: %s", tc.method, tc.path, status, tc.status, body)
			}
			if tc.badField != "" {
				var e httpx.ErrorBody
				if err := json.Unmarshal(body, &e); err != nil || e.Error.Fields[tc.badField] == "" {
					t.Fatalf("400 does not name %q: %s", tc.badField, body)
				}
			}
			if status != 200 {
				if published != before {
					t.Fatal("a rejected change was published")
				}
				return
			}
			var got KnobState
			if err := json.Unmarshal(body, &got); err != nil {
				t.Fatal(err)
			}
			if !tc.check(got) || !tc.check(knobs.Get()) {
				t.Fatalf("change not applied: %s", body)
			}
		})
	}
	status, body := do("GET", "/knobs", "")
	if status != 200 || !strings.Contains(string(body), `"blacklist"`) {
		t.Fatalf("GET /knobs: %d %s", status, body)
	}
}

func TestAdminPublishFailure(t *testing.T) {
	knobs := mustKnobs(t, DefaultKnobState())
	h := AdminHandler(knobs, func(context.Context, KnobState) error { return errors.New("bus down") })
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("PUT", "/blacklist/video/x", nil))
	if rec.Code != http.StatusServiceUnavailable {
		t.Fatalf("status %d, want 503", rec.Code)
	}
	if len(knobs.Get().Blacklist.Videos) != 0 {
		t.Fatal("unpublished change applied")
	}
}
