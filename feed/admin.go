package feed

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"sync"

	"github.com/go-chi/chi/v5"

	"reelfeed/internal/httpx"
	"reelfeed/rank"
)

// AdminHandler serves the runtime knobs (the caller mounts it, typically at
// /v1/admin, behind admin auth):
//
//	GET    /knobs                          current state
//	PUT    /knobs                          replace the whole state
//	PUT    /blacklist/{video|tag|uploader}/{value}
//	DELETE /blacklist/{video|tag|uploader}/{value}
//	PUT    /boosts/{category|tag}/{name}   {"factor": 1.2}
//	DELETE /boosts/{category|tag}/{name}
//	PUT    /slots/{segment}                {"branch": slots, ...}
//	PUT    /experiments/{name}             {"variants": [{"name", "traffic", "params"}]}
//	DELETE /experiments/{name}
//
// A change computes the new state from this replica's current one and
// hands it to publish, which must deliver it to every replica's Knobs.Set
// (this one included); the response is the new state. Changes through one
// handler are serialised; invalid input is a 400 naming each bad field.
func AdminHandler(knobs *Knobs, publish func(context.Context, KnobState) error) http.Handler {
	a := &admin{knobs: knobs, publish: publish}
	r := chi.NewRouter()
	r.Get("/knobs", a.getKnobs)
	r.Put("/knobs", a.putKnobs)
	r.Put("/blacklist/{kind}/{value}", a.putBlacklist)
	r.Delete("/blacklist/{kind}/{value}", a.deleteBlacklist)
	r.Put("/boosts/{kind}/{name}", a.putBoost)
	r.Delete("/boosts/{kind}/{name}", a.deleteBoost)
	r.Put("/slots/{segment}", a.putSlots)
	r.Put("/experiments/{name}", a.putExperiment)
	r.Delete("/experiments/{name}", a.deleteExperiment)
	return r
}

type admin struct {
	knobs   *Knobs
	publish func(context.Context, KnobState) error
	mu      sync.Mutex // serialises read-modify-publish
}

// errNotFound makes a change answer 404.
var errNotFound = errors.New("not found")

// change applies edit to a copy of the current state, validates the result
// and publishes it.
func (a *admin) change(w http.ResponseWriter, r *http.Request, edit func(s *KnobState) error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	s := a.knobs.Get()
	if err := edit(&s); err != nil {
		var invalid *ValidationError
		switch {
		case errors.As(err, &invalid):
			httpx.BadRequest(w, invalid.Error(), invalid.Fields)
		case errors.Is(err, errNotFound):
			httpx.Error(w, http.StatusNotFound, "not_found", err.Error(), nil)
		default:
			httpx.BadRequest(w, err.Error(), nil)
		}
		return
	}
	s.normalize()
	if bad := s.Validate(); len(bad) > 0 {
		httpx.BadRequest(w, (&ValidationError{Fields: bad}).Error(), bad)
		return
	}
	if err := a.publish(r.Context(), s); err != nil {
		httpx.Error(w, http.StatusServiceUnavailable, "publish_failed", "knob change not published: "+err.Error(), nil)
		return
	}
	httpx.JSON(w, http.StatusOK, s)
}

func invalid(field, problem string) error {
	return &ValidationError{Fields: map[string]string{field: problem}}
}

// pathParam returns a route parameter unescaped: chi matches on the raw
// path when the request has one, so "a%2Fb" arrives escaped.
func pathParam(r *http.Request, name string) (string, error) {
	v := chi.URLParam(r, name)
	if r.URL.RawPath == "" {
		return v, nil
	}
	u, err := url.PathUnescape(v)
	if err != nil {
		return "", invalid(name, "invalid escape")
	}
	return u, nil
}

func (a *admin) getKnobs(w http.ResponseWriter, _ *http.Request) {
	httpx.JSON(w, http.StatusOK, a.knobs.Get())
}

func (a *admin) putKnobs(w http.ResponseWriter, r *http.Request) {
	var s KnobState
	if !httpx.DecodeOr400(w, r, &s) {
		return
	}
	a.change(w, r, func(cur *KnobState) error { *cur = s; return nil })
}

// blacklistList returns the list a kind addresses.
func blacklistList(s *KnobState, kind string) (*[]string, error) {
	switch kind {
	case "video":
		return &s.Blacklist.Videos, nil
	case "tag":
		return &s.Blacklist.Tags, nil
	case "uploader":
		return &s.Blacklist.Uploaders, nil
	}
	return nil, invalid("kind", "must be video, tag or uploader")
}

func (a *admin) putBlacklist(w http.ResponseWriter, r *http.Request) {
	a.change(w, r, func(s *KnobState) error {
		list, err := blacklistList(s, chi.URLParam(r, "kind"))
		if err != nil {
			return err
		}
		value, err := pathParam(r, "value")
		if err != nil {
			return err
		}
		*list = append(*list, value)
		return nil
	})
}

func (a *admin) deleteBlacklist(w http.ResponseWriter, r *http.Request) {
	a.change(w, r, func(s *KnobState) error {
		kind := chi.URLParam(r, "kind")
		list, err := blacklistList(s, kind)
		if err != nil {
			return err
		}
		value, err := pathParam(r, "value")
		if err != nil {
			return err
		}
		if kind == "tag" {
			value = canonicalName(value)
		}
		before := len(*list)
		*list = slices.DeleteFunc(*list, func(x string) bool { return x == value })
		if len(*list) == before {
			return errNotFound
		}
		return nil
	})
}

func boostMap(s *KnobState, kind string) (*map[string]float64, error) {
	switch kind {
	case "category":
		return &s.Boosts.Category, nil
	case "tag":
		return &s.Boosts.Tag, nil
	}
	return nil, invalid("kind", "must be category or tag")
}

func (a *admin) putBoost(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Factor *float64 `json:"factor"`
	}
	if !httpx.DecodeOr400(w, r, &body) {
		return
	}
	a.change(w, r, func(s *KnobState) error {
		m, err := boostMap(s, chi.URLParam(r, "kind"))
		if err != nil {
			return err
		}
		name, err := pathParam(r, "name")
		if err != nil {
			return err
		}
		if body.Factor == nil {
			return invalid("factor", "required")
		}
		if !rank.ValidBoostFactor(*body.Factor) {
			return invalid("factor", "must be in (0, 10]; 1.2 means +20%")
		}
		if *m == nil {
			*m = map[string]float64{}
		}
		(*m)[canonicalName(name)] = *body.Factor
		return nil
	})
}

func (a *admin) deleteBoost(w http.ResponseWriter, r *http.Request) {
	a.change(w, r, func(s *KnobState) error {
		m, err := boostMap(s, chi.URLParam(r, "kind"))
		if err != nil {
			return err
		}
		name, err := pathParam(r, "name")
		if err != nil {
			return err
		}
		name = canonicalName(name)
		if _, ok := (*m)[name]; !ok {
			return errNotFound
		}
		delete(*m, name)
		return nil
	})
}

func (a *admin) putSlots(w http.ResponseWriter, r *http.Request) {
	var plan SlotPlan
	if !httpx.DecodeOr400(w, r, &plan) {
		return
	}
	a.change(w, r, func(s *KnobState) error {
		seg := chi.URLParam(r, "segment")
		if !validSegment(seg) {
			return invalid("segment", "must be new, cold or active")
		}
		if bad := validateSlotPlan("", plan); len(bad) > 0 {
			return &ValidationError{Fields: bad}
		}
		if s.Slots == nil {
			s.Slots = map[string]SlotPlan{}
		}
		s.Slots[seg] = plan
		return nil
	})
}

func (a *admin) putExperiment(w http.ResponseWriter, r *http.Request) {
	var e Experiment
	if !httpx.DecodeOr400(w, r, &e) {
		return
	}
	a.change(w, r, func(s *KnobState) error {
		name, err := pathParam(r, "name")
		if err != nil {
			return err
		}
		if !validKnobName(name) {
			return invalid("name", "experiment name must be non-empty, without whitespace, ',' or ':'")
		}
		if bad := validateExperiment("", e); len(bad) > 0 {
			return &ValidationError{Fields: bad}
		}
		if s.Experiments == nil {
			s.Experiments = map[string]Experiment{}
		}
		s.Experiments[name] = e
		return nil
	})
}

func (a *admin) deleteExperiment(w http.ResponseWriter, r *http.Request) {
	a.change(w, r, func(s *KnobState) error {
		name, err := pathParam(r, "name")
		if err != nil {
			return err
		}
		if _, ok := s.Experiments[name]; !ok {
			return errNotFound
		}
		delete(s.Experiments, name)
		return nil
	})
}
