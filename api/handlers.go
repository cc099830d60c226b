package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"reelfeed/auth"
	"reelfeed/catalog"
	"reelfeed/event"
	"reelfeed/ingest"
	"reelfeed/internal/httpx"
)

// FeedRequest is a parsed GET /v1/feed.
type FeedRequest struct {
	UserID    string
	Count     int
	Region    string
	Device    string
	Surface   string
	Debug     bool
	RequestID string
}

// StatusError lets a service say how an error is answered.
type StatusError struct {
	Status  int
	Code    string
	Message string
	Fields  map[string]string
}

func (e *StatusError) Error() string { return e.Message }

// FeedService answers feed requests; its result is marshalled as the body.
type FeedService interface {
	Feed(ctx context.Context, req FeedRequest) (any, error)
}

type ingestMetrics struct {
	accepted   *prometheus.CounterVec
	rejected   *prometheus.CounterVec
	duplicates prometheus.Counter
}

func newIngestMetrics(reg prometheus.Registerer) *ingestMetrics {
	m := &ingestMetrics{
		accepted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "reelfeed_events_accepted_total",
			Help: "Behaviour events durably stored in the events stream, by type.",
		}, []string{"type"}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "reelfeed_events_rejected_total",
			Help: "Events refused, by reason (invalid, forbidden, unavailable).",
		}, []string{"reason"}),
		duplicates: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "reelfeed_events_duplicate_total",
			Help: "Events whose id the stream had already stored (client retries).",
		}),
	}
	reg.MustRegister(m.accepted, m.rejected, m.duplicates)
	return m
}

func (s *Server) postEvents(w http.ResponseWriter, r *http.Request) {
	if s.d.Backlog != nil && s.d.MaxBacklog > 0 {
		if lag := s.d.Backlog(); lag > s.d.MaxBacklog {
			// Accepting more now would only make every event visible later.
			s.ingest.rejected.WithLabelValues("backlog").Inc()
			w.Header().Set("Retry-After", "1")
			httpx.Error(w, http.StatusServiceUnavailable, "backlog",
				fmt.Sprintf("%d events are waiting to be applied (limit %d); retry shortly (event ids make retries safe)", lag, s.d.MaxBacklog), nil)
			return
		}
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			s.ingest.rejected.WithLabelValues("too_large").Inc()
			httpx.Error(w, http.StatusRequestEntityTooLarge, "body_too_large",
				fmt.Sprintf("request body larger than %d bytes", tooBig.Limit), map[string]string{"body": "too large"})
			return
		}
		httpx.BadRequest(w, "could not read body", map[string]string{"body": err.Error()})
		return
	}
	events, bad := ingest.DecodeEvents(body, s.d.Now(), s.d.EventLimits)
	if bad != nil {
		s.ingest.rejected.WithLabelValues("invalid").Add(1)
		httpx.BadRequest(w, fmt.Sprintf("%d invalid field(s); no event of this batch was accepted", len(bad)), bad)
		return
	}
	p, _ := auth.FromContext(r.Context())
	for i, ev := range events {
		if !p.CanActFor(ev.UserID) {
			s.ingest.rejected.WithLabelValues("forbidden").Inc()
			httpx.Error(w, http.StatusForbidden, "forbidden",
				fmt.Sprintf("a user token may only post its own events; no event of this batch was accepted"),
				map[string]string{fmt.Sprintf("events[%d].user_id", i): "not the token's subject"})
			return
		}
	}
	s.enrich(events)
	res, err := s.d.Bus.PublishEvents(r.Context(), events)
	if err != nil {
		s.ingest.rejected.WithLabelValues("unavailable").Inc()
		s.d.Log.Warn("events not stored", zap.Error(err), zap.Int("events", len(events)))
		w.Header().Set("Retry-After", "1")
		httpx.Error(w, http.StatusServiceUnavailable, "unavailable",
			"the event stream did not confirm the batch; retry it (event ids make retries safe)", nil)
		return
	}
	for _, ev := range events {
		s.ingest.accepted.WithLabelValues(ev.Type.String()).Inc()
	}
	s.ingest.duplicates.Add(float64(res.Duplicates))
	ids := make([]string, len(events))
	for i, ev := range events {
		ids[i] = ev.ID
	}
	httpx.JSON(w, http.StatusAccepted, map[string]any{"accepted": len(events), "duplicates": res.Duplicates, "event_ids": ids})
}

// enrich copies the video's metadata into each event, so applying (or
// replaying) it later does not depend on the catalog at that time.
func (s *Server) enrich(events []event.Event) {
	for i := range events {
		if v, ok := s.d.Catalog.Get(events[i].VideoID); ok {
			events[i].Category = v.Category
			events[i].Tags = v.Tags
			events[i].UploaderID = v.UploaderID
		}
	}
}

func (s *Server) postVideos(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Videos []*catalog.Video `json:"videos"`
	}
	if !httpx.DecodeOr400(w, r, &req) {
		return
	}
	switch {
	case req.Videos == nil:
		httpx.BadRequest(w, "videos is required", map[string]string{"videos": "required"})
		return
	case len(req.Videos) == 0:
		httpx.BadRequest(w, "videos is empty", map[string]string{"videos": "must contain at least one video"})
		return
	case len(req.Videos) > s.d.EventLimits.MaxBatch:
		httpx.BadRequest(w, "batch too large", map[string]string{"videos": fmt.Sprintf("at most %d videos per batch", s.d.EventLimits.MaxBatch)})
		return
	}
	bad := map[string]string{}
	now := s.d.Now()
	for i, v := range req.Videos {
		if v == nil {
			bad[fmt.Sprintf("videos[%d]", i)] = "must be an object"
			continue
		}
		v.Normalize(now)
		for f, msg := range v.Validate() {
			bad[fmt.Sprintf("videos[%d].%s", i, f)] = msg
		}
	}
	if len(bad) > 0 {
		httpx.BadRequest(w, fmt.Sprintf("%d invalid field(s); no video of this batch was stored", len(bad)), bad)
		return
	}
	if err := s.d.Bus.PublishVideos(r.Context(), req.Videos); err != nil {
		s.unavailable(w, "catalog stream", err)
		return
	}
	// Apply locally too, so this replica reads its own writes at once;
	// the stream brings the same state to every other replica.
	for _, v := range req.Videos {
		s.d.Catalog.Upsert(v)
	}
	httpx.JSON(w, http.StatusOK, map[string]int{"upserted": len(req.Videos)})
}

func (s *Server) unavailable(w http.ResponseWriter, what string, err error) {
	s.d.Log.Warn(what+" unavailable", zap.Error(err))
	w.Header().Set("Retry-After", "1")
	httpx.Error(w, http.StatusServiceUnavailable, "unavailable", what+" unavailable; nothing was stored, retry", nil)
}

func (s *Server) getVideo(w http.ResponseWriter, r *http.Request) {
	id := chi.URLParam(r, "id")
	v, ok := s.d.Catalog.Get(id)
	if !ok {
		httpx.Error(w, http.StatusNotFound, "not_found", "no video "+id, nil)
		return
	}
	stats, err := s.d.Features.Get(r.Context(), nil, []string{id}, s.d.Now())
	if err != nil {
		s.unavailable(w, "feature store", err)
		return
	}
	st := stats[0]
	sm := s.d.Smoothing
	httpx.JSON(w, http.StatusOK, map[string]any{
		"video": v,
		"features": map[string]any{
			"hour":             st.Hour.Map(),
			"day":              st.Day.Map(),
			"lifetime":         st.Lifetime.Map(),
			"ctr":              sm.CTR(st.Day),
			"completion_rate":  sm.CompletionRate(st.Day),
			"interaction_rate": sm.InteractionRate(st.Day),
		},
	})
}

func (s *Server) deleteVideo(w http.ResponseWriter, r *http.Request) {
	id := chi.URLParam(r, "id")
	if _, ok := s.d.Catalog.Get(id); !ok {
		httpx.Error(w, http.StatusNotFound, "not_found", "no video "+id, nil)
		return
	}
	if err := s.d.Bus.PublishVideoDelete(r.Context(), id); err != nil {
		s.unavailable(w, "catalog stream", err)
		return
	}
	s.d.Catalog.Delete(id)
	httpx.JSON(w, http.StatusOK, map[string]any{"deleted": id})
}

func (s *Server) putUser(w http.ResponseWriter, r *http.Request) {
	id := chi.URLParam(r, "id")
	p, _ := auth.FromContext(r.Context())
	if !p.CanActFor(id) {
		auth.Forbid(w, p, id)
		return
	}
	var u catalog.User
	if !httpx.DecodeOr400(w, r, &u) {
		return
	}
	if u.ID != "" && u.ID != id {
		httpx.BadRequest(w, "user_id does not match the path", map[string]string{"user_id": "must equal " + id + " or be omitted"})
		return
	}
	u.ID = id
	u.Normalize()
	if bad := u.Validate(); len(bad) > 0 {
		httpx.BadRequest(w, "invalid user", bad)
		return
	}
	if err := s.d.Bus.PublishUser(r.Context(), &u); err != nil {
		s.unavailable(w, "catalog stream", err)
		return
	}
	s.d.Catalog.PutUser(&u)
	httpx.JSON(w, http.StatusOK, &u)
}

func (s *Server) getUser(w http.ResponseWriter, r *http.Request) {
	id := chi.URLParam(r, "id")
	p, _ := auth.FromContext(r.Context())
	if !p.CanActFor(id) {
		auth.Forbid(w, p, id)
		return
	}
	u, ok := s.d.Catalog.User(id)
	if !ok {
		httpx.Error(w, http.StatusNotFound, "not_found", "no declared attributes for user "+id, nil)
		return
	}
	httpx.JSON(w, http.StatusOK, u)
}

func (s *Server) getProfile(w http.ResponseWriter, r *http.Request) {
	id := chi.URLParam(r, "id")
	p, _ := auth.FromContext(r.Context())
	if !p.CanActFor(id) {
		auth.Forbid(w, p, id)
		return
	}
	prof, err := s.d.Profiles.Get(r.Context(), id, s.d.Now())
	if err != nil {
		s.unavailable(w, "profile store", err)
		return
	}
	body := map[string]any{
		"user_id":    id,
		"short_term": prof.ShortTerm,
		"long_term":  prof.LongTerm,
		"counts":     prof.Counts.Map(),
		"played":     len(prof.Played),
		"shown":      len(prof.Shown),
	}
	if !prof.LastEvent.IsZero() {
		body["last_event"] = prof.LastEvent
	}
	if u, ok := s.d.Catalog.User(id); ok {
		body["attributes"] = u
	}
	httpx.JSON(w, http.StatusOK, body)
}

func (s *Server) getFeed(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	req := FeedRequest{
		UserID:    q.Get("user_id"),
		Region:    strings.ToLower(q.Get("region")),
		Device:    strings.ToLower(q.Get("device")),
		Surface:   q.Get("surface"),
		Count:     10,
		RequestID: middleware.GetReqID(r.Context()),
	}
	bad := map[string]string{}
	p, _ := auth.FromContext(r.Context())
	if req.UserID == "" {
		if p.Role == auth.RoleUser {
			req.UserID = p.Subject
		} else {
			bad["user_id"] = "required"
		}
	} else if !catalog.ValidID(req.UserID) {
		bad["user_id"] = "invalid user id"
	}
	if c := q.Get("count"); c != "" {
		n, err := strconv.Atoi(c)
		if err != nil || n < 1 || n > 50 {
			bad["count"] = "must be an integer from 1 to 50"
		}
		req.Count = n
	}
	switch d := q.Get("debug"); d {
	case "", "0", "false":
	case "1", "true":
		req.Debug = true
	default:
		bad["debug"] = "must be 1 or 0"
	}
	if len(bad) > 0 {
		httpx.BadRequest(w, "invalid feed request", bad)
		return
	}
	if !p.CanActFor(req.UserID) {
		auth.Forbid(w, p, req.UserID)
		return
	}
	if s.d.Feed == nil {
		httpx.Error(w, http.StatusServiceUnavailable, "unavailable", "feed not wired", nil)
		return
	}
	resp, err := s.d.Feed.Feed(r.Context(), req)
	if err != nil {
		var se *StatusError
		if errors.As(err, &se) {
			if se.Status == http.StatusServiceUnavailable {
				w.Header().Set("Retry-After", "1")
			}
			httpx.Error(w, se.Status, se.Code, se.Message, se.Fields)
			return
		}
		if errors.Is(err, context.DeadlineExceeded) {
			httpx.Error(w, http.StatusGatewayTimeout, "timeout", "feed took too long", nil)
			return
		}
		s.d.Log.Error("feed failed", zap.Error(err), zap.String("user_id", req.UserID))
		httpx.Error(w, http.StatusInternalServerError, "internal", "feed failed: "+err.Error(), nil)
		return
	}
	httpx.JSON(w, http.StatusOK, resp)
}
