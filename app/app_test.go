package app

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"reelfeed/auth"
	"reelfeed/config"
	"reelfeed/internal/testenv"
)

const testSecret = "test-secret-0123456789abcdef"

// startApp runs a real App (embedded NATS in a temp dir, memory stores
// unless mutate says otherwise) listening on a free loopback port.
func startApp(t *testing.T, mutate func(*config.Config)) *App {
	t.Helper()
	cfg := config.Default()
	cfg.HTTP.Addr = "127.0.0.1:0"
	cfg.DataDir = t.TempDir()
	cfg.Auth.Secret = testSecret
	cfg.Log.AccessLog = false
	if mutate != nil {
		mutate(&cfg)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	a, err := New(ctx, &cfg, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = a.Shutdown(ctx)
	})
	return a
}

func token(t *testing.T, secret, sub string, role auth.Role, ttl time.Duration) string {
	t.Helper()
	a := auth.New([]byte(secret))
	tok, err := a.Issue(sub, role, ttl)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

type response struct {
	status int
	header http.Header
	body   map[string]any
	raw    string
}

func do(t *testing.T, method, url, tok string, body any) response {
	t.Helper()
	var r io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		r = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, url, r)
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	out := response{status: resp.StatusCode, header: resp.Header, raw: string(raw)}
	_ = json.Unmarshal(raw, &out.body)
	return out
}

func TestAuthMatrix(t *testing.T) {
	a := startApp(t, nil)
	base := a.URL()
	alice := token(t, testSecret, "alice", auth.RoleUser, time.Hour)
	service := token(t, testSecret, "app-backend", auth.RoleService, time.Hour)
	admin := token(t, testSecret, "ops", auth.RoleAdmin, time.Hour)
	forged := token(t, "some-other-secret-0123456789", "alice", auth.RoleAdmin, time.Hour)
	expired := func() string {
		au := auth.New([]byte(testSecret))
		tok, _ := au.Issue("alice", auth.RoleUser, time.Nanosecond)
		time.Sleep(1100 * time.Millisecond) // exp has second resolution
		return tok
	}()
	cases := []struct {
		name, method, path, tok string
		body                    any
		want                    int
	}{
		{"no token", "GET", "/v1/users/alice/profile", "", nil, 401},
		{"garbage token", "GET", "/v1/users/alice/profile", "not-a-jwt", nil, 401},
		{"bad signature", "GET", "/v1/users/alice/profile", forged, nil, 401},
		{"expired", "GET", "/v1/users/alice/profile", expired, nil, 401},
		{"user reads own profile", "GET", "/v1/users/alice/profile", alice, nil, 200},
		{"user reads another user's profile", "GET", "/v1/users/bob/profile", alice, nil, 403},
		{"user reads another user's feed", "GET", "/v1/feed?user_id=bob", alice, nil, 403},
		{"user posts another user's events", "POST", "/v1/events", alice,
			map[string]any{"events": []map[string]any{{"user_id": "bob", "video_id": "v1", "type": "play"}}}, 403},
		{"user posts own events", "POST", "/v1/events", alice,
			map[string]any{"events": []map[string]any{{"user_id": "alice", "video_id": "v1", "type": "play"}}}, 202},
		{"user may not write the catalog", "POST", "/v1/videos", alice,
			map[string]any{"videos": []map[string]any{{"video_id": "v1", "uploader_id": "u", "category": "c"}}}, 403},
		{"service reads any profile", "GET", "/v1/users/bob/profile", service, nil, 200},
		{"service writes the catalog", "POST", "/v1/videos", service,
			map[string]any{"videos": []map[string]any{{"video_id": "v1", "uploader_id": "u", "category": "c"}}}, 200},
		{"service is not admin", "GET", "/v1/admin/jobs", service, nil, 403},
		{"admin reaches admin", "GET", "/v1/admin/jobs", admin, nil, 200},
		{"health needs no token", "GET", "/healthz", "", nil, 200},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := do(t, tc.method, base+tc.path, tc.tok, tc.body)
			if r.status != tc.want {
				t.Fatalf("%s %s: status %d, want %d; body %s", tc.method, tc.path, r.status, tc.want, r.raw)
			}
			if r.status >= 400 {
				errObj, ok := r.body["error"].(map[string]any)
				if !ok || errObj["code"] == "" || errObj["message"] == "" {
					t.Fatalf("error body %s lacks the {error:{code,message}} shape", r.raw)
				}
			}
		})
	}
}

func TestRateLimitAnswers429WithRetryAfter(t *testing.T) {
	a := startApp(t, func(c *config.Config) {
		c.RateLimit.PerSecond = 1
		c.RateLimit.Burst = 3
	})
	alice := token(t, testSecret, "alice", auth.RoleUser, time.Hour)
	bob := token(t, testSecret, "bob", auth.RoleUser, time.Hour)
	var last response
	for i := 0; i < 4; i++ {
		last = do(t, "GET", a.URL()+"/v1/users/alice/profile", alice, nil)
	}
	if last.status != http.StatusTooManyRequests {
		t.Fatalf("4th request in a burst of 3: status %d, want 429", last.status)
	}
	if ra := last.header.Get("Retry-After"); ra == "" || ra == "0" {
		t.Fatalf("429 without a usable Retry-After: %q", ra)
	}
	if r := do(t, "GET", a.URL()+"/v1/users/bob/profile", bob, nil); r.status != 200 {
		t.Fatalf("another user is limited separately: got %d", r.status)
	}
}

func TestRateLimitSharedInRedis(t *testing.T) {
	addr := testenv.RedisAddr(t)
	prefix := "rftest:" + testenv.RandomID() + ":"
	mk := func() *App {
		return startApp(t, func(c *config.Config) {
			c.Redis.Addr = addr
			c.Redis.Prefix = prefix
			c.RateLimit.PerSecond = 1
			c.RateLimit.Burst = 2
		})
	}
	r1, r2 := mk(), mk()
	alice := token(t, testSecret, "alice", auth.RoleUser, time.Hour)
	do(t, "GET", r1.URL()+"/v1/users/alice/profile", alice, nil)
	do(t, "GET", r2.URL()+"/v1/users/alice/profile", alice, nil)
	if r := do(t, "GET", r1.URL()+"/v1/users/alice/profile", alice, nil); r.status != 429 {
		t.Fatalf("third request across two replicas sharing Redis: %d, want 429", r.status)
	}
}

func TestReadyzNamesUnreachableRedis(t *testing.T) {
	port := testenv.FreePort(t) // nothing listens there
	a := startApp(t, func(c *config.Config) { c.Redis.Addr = fmt.Sprintf("127.0.0.1:%d", port) })
	r := do(t, "GET", a.URL()+"/readyz", "", nil)
	if r.status != http.StatusServiceUnavailable {
		t.Fatalf("/readyz with Redis down: %d, want 503 (%s)", r.status, r.raw)
	}
	if !strings.Contains(r.raw, "redis") {
		t.Fatalf("/readyz does not name redis: %s", r.raw)
	}
	if h := do(t, "GET", a.URL()+"/healthz", "", nil); h.status != 200 {
		t.Fatalf("/healthz must stay 200 (process alive): %d", h.status)
	}
}

func TestReadyzOKEmbedded(t *testing.T) {
	a := startApp(t, nil)
	deadline := time.Now().Add(5 * time.Second)
	for {
		r := do(t, "GET", a.URL()+"/readyz", "", nil)
		if r.status == 200 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz never ready: %s", r.raw)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestMetricsExposeHTTPLatency(t *testing.T) {
	a := startApp(t, nil)
	do(t, "GET", a.URL()+"/healthz", "", nil)
	r := do(t, "GET", a.URL()+"/metrics", "", nil)
	if !strings.Contains(r.raw, `reelfeed_http_request_duration_seconds_bucket{method="GET",route="/healthz",status="200"`) {
		t.Fatalf("metrics lack the HTTP latency histogram by route and status:\n%.2000s", r.raw)
	}
	svc := token(t, testSecret, "svc", auth.RoleService, time.Hour)
	do(t, "POST", a.URL()+"/v1/videos", svc, map[string]any{"videos": []map[string]any{
		{"video_id": "m1", "uploader_id": "u", "category": "c"}, {"video_id": "m2", "uploader_id": "u", "category": "c"}}})
	if r := do(t, "GET", a.URL()+"/metrics", "", nil); !strings.Contains(r.raw, "\nreelfeed_catalog_videos 2\n") {
		t.Fatalf("metrics lack the catalog size (2 videos)")
	}
}

func TestOversizedBodyIs413WithTheErrorShape(t *testing.T) {
	a := startApp(t, func(c *config.Config) { c.HTTP.MaxBodyBytes = 2048 })
	svc := token(t, testSecret, "svc", auth.RoleService, time.Hour)
	videos := make([]map[string]any, 100)
	for i := range videos {
		videos[i] = map[string]any{"video_id": fmt.Sprint("v", i), "uploader_id": "u", "category": "c", "title": strings.Repeat("x", 100)}
	}
	r := do(t, "POST", a.URL()+"/v1/videos", svc, map[string]any{"videos": videos})
	if r.status != http.StatusRequestEntityTooLarge {
		t.Fatalf("oversized body: status %d, want 413: %s", r.status, r.raw)
	}
	if e, _ := r.body["error"].(map[string]any); e["code"] != "body_too_large" {
		t.Fatalf("oversized body: %s", r.raw)
	}
}

// An in-flight request (here: a client still sending its body) completes
// with its normal answer while the server shuts down.
func TestGracefulShutdownFinishesInFlightRequest(t *testing.T) {
	cfg := config.Default()
	cfg.HTTP.Addr = "127.0.0.1:0"
	cfg.DataDir = t.TempDir()
	cfg.Auth.Secret = testSecret
	cfg.Log.AccessLog = false
	a, err := New(context.Background(), &cfg, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Start(); err != nil {
		t.Fatal(err)
	}
	body := `{"events":[{"event_id":"slow-1","user_id":"alice","video_id":"v1","type":"play"}]}`
	conn, err := net.Dial("tcp", a.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	tok := token(t, testSecret, "svc", auth.RoleService, time.Hour)
	fmt.Fprintf(conn, "POST /v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", tok, len(body))
	fmt.Fprint(conn, body[:20])
	time.Sleep(100 * time.Millisecond) // the server is now reading this request

	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		done <- a.Shutdown(ctx)
	}()
	time.Sleep(200 * time.Millisecond)
	select {
	case err := <-done:
		t.Fatalf("shutdown returned (%v) while a request was in flight", err)
	default:
	}
	fmt.Fprint(conn, body[20:])
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	status := make([]byte, 12)
	if _, err := io.ReadFull(conn, status); err != nil {
		t.Fatalf("no response to the in-flight request: %v", err)
	}
	if string(status) != "HTTP/1.1 202" {
		t.Fatalf("in-flight request answered %q, want 202", status)
	}
	if err := <-done; err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	// New connections are refused once shut down.
	if c, err := net.DialTimeout("tcp", a.Addr(), time.Second); err == nil {
		c.Close()
		t.Fatal("server still accepts connections after shutdown")
	}
}

// A restart of the embedded-mode process keeps the catalog, users,
// profiles, video features and runtime knobs: all are rebuilt from the
// streams in data_dir.
func TestRestartKeepsEverything(t *testing.T) {
	dir := t.TempDir()
	mk := func() *App {
		return startApp(t, func(c *config.Config) { c.DataDir = dir })
	}
	svc := token(t, testSecret, "svc", auth.RoleService, time.Hour)
	admin := token(t, testSecret, "ops", auth.RoleAdmin, time.Hour)

	a := mk()
	base := a.URL()
	must := func(r response, want int) {
		t.Helper()
		if r.status != want {
			t.Fatalf("status %d, want %d: %s", r.status, want, r.raw)
		}
	}
	must(do(t, "POST", base+"/v1/videos", svc, map[string]any{"videos": []map[string]any{
		{"video_id": "v1", "uploader_id": "up", "category": "pets", "tags": []string{"cats"}, "quality": 0.9},
		{"video_id": "v2", "uploader_id": "up", "category": "food", "quality": 0.5},
		{"video_id": "gone", "uploader_id": "up", "category": "food", "quality": 0.5},
	}}), 200)
	must(do(t, "DELETE", base+"/v1/videos/gone", svc, nil), 200)
	must(do(t, "PUT", base+"/v1/users/alice", svc, map[string]any{"age": 30, "region": "eu"}), 200)
	must(do(t, "POST", base+"/v1/events", svc, map[string]any{"events": []map[string]any{
		{"event_id": "r1", "user_id": "alice", "video_id": "v1", "type": "complete"},
		{"event_id": "r2", "user_id": "alice", "video_id": "v1", "type": "like"},
	}}), 202)
	must(do(t, "PUT", base+"/v1/admin/blacklist/video/v2", admin, nil), 200)
	waitCounts := func(base string) {
		deadline := time.Now().Add(5 * time.Second)
		for {
			r := do(t, "GET", base+"/v1/users/alice/profile", svc, nil)
			if c, _ := r.body["counts"].(map[string]any); c["complete"] == 1.0 && c["like"] == 1.0 {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("profile never showed the events: %s", r.raw)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitCounts(base)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := a.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}

	b := mk()
	base = b.URL()
	deadline := time.Now().Add(5 * time.Second)
	for do(t, "GET", base+"/readyz", "", nil).status != 200 {
		if time.Now().After(deadline) {
			t.Fatal("restarted process never became ready")
		}
		time.Sleep(20 * time.Millisecond)
	}
	waitCounts(base)
	v := do(t, "GET", base+"/v1/videos/v1", svc, nil)
	must(v, 200)
	if f := v.body["features"].(map[string]any)["lifetime"].(map[string]any); f["complete"] != 1.0 {
		t.Fatalf("video features lost across restart: %s", v.raw)
	}
	must(do(t, "GET", base+"/v1/videos/gone", svc, nil), 404)
	u := do(t, "GET", base+"/v1/users/alice", svc, nil)
	must(u, 200)
	if u.body["region"] != "eu" {
		t.Fatalf("declared user lost: %s", u.raw)
	}
	feedResp := do(t, "GET", base+"/v1/feed?user_id=bob&count=10", svc, nil)
	must(feedResp, 200)
	if strings.Contains(feedResp.raw, `"v2"`) {
		t.Fatalf("blacklist knob lost across restart: %s", feedResp.raw)
	}
	if !strings.Contains(feedResp.raw, `"v1"`) {
		t.Fatalf("feed after restart lacks the catalog: %s", feedResp.raw)
	}
}
