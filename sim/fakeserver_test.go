package sim

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"reelfeed/catalog"
	"reelfeed/event"
)

// fakeServer implements the handful of endpoints the simulator and the
// benchmarks call, with the contract's validation (DESIGN.md), so their
// client logic can be tested alone. It is not the recommender: its feed is
// random unseen videos. End-to-end tests against the real server live with
// the commands.
type fakeServer struct {
	t          *testing.T
	url        string
	token      string
	applyDelay time.Duration
	// failFeedEvery makes every n-th feed request fail with 503 (0: never).
	failFeedEvery int

	mu        sync.Mutex
	rng       *rand.Rand
	videos    map[string]catalog.Video
	order     []string
	users     map[string]catalog.User
	counts    map[string]map[string]int64
	applied   map[string]bool
	shown     map[string]map[string]bool // per user: served, or any event (the played filter)
	requests  map[string]map[string]bool // request id → videos served
	feedCalls int
	events    []event.Event
	jobsRun   map[string]int
}

func newFakeServer(t *testing.T) *fakeServer {
	f := &fakeServer{
		t: t, token: "test-token", rng: rand.New(rand.NewPCG(1, 2)),
		videos: map[string]catalog.Video{}, users: map[string]catalog.User{},
		counts: map[string]map[string]int64{}, applied: map[string]bool{},
		shown: map[string]map[string]bool{}, requests: map[string]map[string]bool{},
		jobsRun: map[string]int{},
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/videos", f.postVideos)
	mux.HandleFunc("GET /v1/videos/{id}", f.getVideo)
	mux.HandleFunc("PUT /v1/users/{id}", f.putUser)
	mux.HandleFunc("GET /v1/users/{id}/profile", f.profile)
	mux.HandleFunc("POST /v1/events", f.postEvents)
	mux.HandleFunc("GET /v1/feed", f.feed)
	mux.HandleFunc("POST /v1/admin/jobs/{name}", f.job)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+f.token {
			apiError(w, http.StatusUnauthorized, "unauthorized", "missing or invalid token", nil)
			return
		}
		mux.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	f.url = srv.URL
	return f
}

func (f *fakeServer) target() Target { return Target{BaseURL: f.url, Token: f.token} }

func apiError(w http.ResponseWriter, status int, code, msg string, fields map[string]string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]any{"error": map[string]any{"code": code, "message": msg, "fields": fields}})
}

func reply(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func decodeStrict(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		apiError(w, http.StatusBadRequest, "invalid_request", err.Error(), nil)
		return false
	}
	return true
}

func (f *fakeServer) postVideos(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Videos []catalog.Video `json:"videos"`
	}
	if !decodeStrict(w, r, &body) {
		return
	}
	if len(body.Videos) > 1000 {
		apiError(w, http.StatusBadRequest, "invalid_request", "batch over 1000", nil)
		return
	}
	bad := map[string]string{}
	for i := range body.Videos {
		body.Videos[i].Normalize(time.Now())
		for k, v := range body.Videos[i].Validate() {
			bad[fmt.Sprintf("videos[%d].%s", i, k)] = v
		}
	}
	if len(bad) > 0 {
		apiError(w, http.StatusBadRequest, "invalid_request", "invalid videos", bad)
		return
	}
	f.mu.Lock()
	for _, v := range body.Videos {
		if _, ok := f.videos[v.ID]; !ok {
			f.order = append(f.order, v.ID)
		}
		f.videos[v.ID] = v
	}
	f.mu.Unlock()
	reply(w, http.StatusOK, map[string]int{"upserted": len(body.Videos)})
}

func (f *fakeServer) getVideo(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	v, ok := f.videos[r.PathValue("id")]
	f.mu.Unlock()
	if !ok {
		apiError(w, http.StatusNotFound, "not_found", "no such video", nil)
		return
	}
	reply(w, http.StatusOK, v)
}

func (f *fakeServer) putUser(w http.ResponseWriter, r *http.Request) {
	var u catalog.User
	var body struct {
		Age      int      `json:"age"`
		Gender   string   `json:"gender"`
		Region   string   `json:"region"`
		Device   string   `json:"device"`
		Language string   `json:"language"`
		Follows  []string `json:"follows"`
	}
	if !decodeStrict(w, r, &body) {
		return
	}
	u = catalog.User{ID: r.PathValue("id"), Age: body.Age, Gender: body.Gender, Region: body.Region, Device: body.Device, Language: body.Language, Follows: body.Follows}
	u.Normalize()
	if bad := u.Validate(); len(bad) > 0 {
		apiError(w, http.StatusBadRequest, "invalid_request", "invalid user", bad)
		return
	}
	f.mu.Lock()
	f.users[u.ID] = u
	f.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

func (f *fakeServer) profile(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	f.mu.Lock()
	counts := map[string]int64{}
	for k, v := range f.counts[id] {
		counts[k] = v
	}
	f.mu.Unlock()
	reply(w, http.StatusOK, map[string]any{"user_id": id, "short_term": map[string]any{}, "long_term": map[string]any{}, "counts": counts})
}

func (f *fakeServer) postEvents(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Events []event.Event `json:"events"`
	}
	if !decodeStrict(w, r, &body) {
		return
	}
	now := time.Now()
	bad := map[string]string{}
	f.mu.Lock()
	for i, ev := range body.Events {
		at := func(field, why string) { bad[fmt.Sprintf("events[%d].%s", i, field)] = why }
		switch {
		case ev.ID == "":
			at("event_id", "required")
		case ev.UserID == "":
			at("user_id", "required")
		case ev.VideoID == "":
			at("video_id", "required")
		case ev.WatchMs < 0:
			at("watch_ms", "must be >= 0")
		case ev.TS.After(now):
			at("ts", "in the future")
		case ev.RequestID != "" && ev.Type != event.Impression && !f.requests[ev.RequestID][ev.VideoID]:
			at("request_id", "does not name a feed response that served this video")
		}
	}
	f.mu.Unlock()
	if len(body.Events) > 1000 || len(bad) > 0 {
		f.t.Errorf("the client posted invalid events: %v", bad)
		apiError(w, http.StatusBadRequest, "invalid_request", "invalid events", bad)
		return
	}
	apply := func() {
		f.mu.Lock()
		defer f.mu.Unlock()
		for _, ev := range body.Events {
			if f.applied[ev.ID] {
				continue
			}
			f.applied[ev.ID] = true
			f.events = append(f.events, ev)
			if f.counts[ev.UserID] == nil {
				f.counts[ev.UserID] = map[string]int64{}
			}
			f.counts[ev.UserID][ev.Type.String()]++
			if f.shown[ev.UserID] == nil {
				f.shown[ev.UserID] = map[string]bool{}
			}
			f.shown[ev.UserID][ev.VideoID] = true
		}
	}
	if f.applyDelay > 0 {
		time.AfterFunc(f.applyDelay, apply)
	} else {
		apply()
	}
	reply(w, http.StatusAccepted, map[string]int{"accepted": len(body.Events)})
}

func (f *fakeServer) feed(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	user := q.Get("user_id")
	count := 10
	if c := q.Get("count"); c != "" {
		n, err := strconv.Atoi(c)
		if err != nil || n < 1 || n > 50 {
			apiError(w, http.StatusBadRequest, "invalid_request", "count must be 1..50", map[string]string{"count": "must be 1..50"})
			return
		}
		count = n
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.feedCalls++
	if f.failFeedEvery > 0 && f.feedCalls%f.failFeedEvery == 0 {
		apiError(w, http.StatusServiceUnavailable, "unavailable", "try again", nil)
		return
	}
	if f.shown[user] == nil {
		f.shown[user] = map[string]bool{}
	}
	reqID := fmt.Sprintf("req-%d", f.feedCalls)
	f.requests[reqID] = map[string]bool{}
	type item struct {
		VideoID    string  `json:"video_id"`
		Branch     string  `json:"branch"`
		Score      float64 `json:"score"`
		PlayURL    string  `json:"play_url"`
		Category   string  `json:"category"`
		UploaderID string  `json:"uploader_id"`
	}
	items := []item{}
	for attempt := 0; attempt < 50*count && len(items) < count && len(f.order) > 0; attempt++ {
		v := f.videos[f.order[f.rng.IntN(len(f.order))]]
		if f.shown[user][v.ID] || !v.AllowedIn(q.Get("region")) {
			continue
		}
		f.shown[user][v.ID] = true
		f.requests[reqID][v.ID] = true
		items = append(items, item{v.ID, "explore", 0.5, "https://cdn.example/" + v.ID, v.Category, v.UploaderID})
	}
	reply(w, http.StatusOK, map[string]any{"request_id": reqID, "user_id": user, "items": items})
}

func (f *fakeServer) job(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if name != "hotlist" {
		apiError(w, http.StatusNotFound, "not_found", "no such job", nil)
		return
	}
	f.mu.Lock()
	f.jobsRun[name]++
	f.mu.Unlock()
	reply(w, http.StatusOK, map[string]string{"job": name, "status": "done"})
}
