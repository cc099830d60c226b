package api

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"reelfeed/auth"
)

// Past the backlog limit, event writes are refused with 503 + Retry-After
// (nothing is accepted), so a flood cannot push visibility out without
// bound; under the limit they go through to validation as usual.
func TestEventsRefusedWhileBacklogIsOverLimit(t *testing.T) {
	authority := auth.New([]byte("backlog-test-secret-0123456789"))
	tok, _ := authority.Issue("svc", auth.RoleService, time.Hour)
	var backlog uint64 = 5000
	s := New(Deps{
		Log: zap.NewNop(), Registry: prometheus.NewRegistry(), Auth: authority,
		Backlog: func() uint64 { return backlog }, MaxBacklog: 1000,
		RequestTimeout: time.Second, MaxBodyBytes: 1 << 20,
	})
	post := func() *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodPost, "/v1/events", strings.NewReader(`{"events":[]}`))
		req.Header.Set("Authorization", "Bearer "+tok)
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, req)
		return rec
	}
	rec := post()
	if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") == "" || !strings.Contains(rec.Body.String(), `"backlog"`) {
		t.Fatalf("over the limit: %d %q %s", rec.Code, rec.Header().Get("Retry-After"), rec.Body)
	}
	backlog = 10
	if rec := post(); rec.Code != http.StatusBadRequest { // reaches validation: an empty batch is invalid
		t.Fatalf("under the limit the request must reach validation, got %d %s", rec.Code, rec.Body)
	}
}
