package app

// Helpers for the scale-out and fault integration tests (replica_test.go,
// fault_test.go): shared NATS streams and Redis keys isolated per test,
// our own redis-server / nats-server processes on free ports, the real
// reelfeed binary, and HTTP calls with a timeout.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"reelfeed/config"
	"reelfeed/internal/testenv"
)

// shared is one test's slice of the machine's NATS and Redis: a stream
// prefix and a key prefix nobody else uses, both removed when the test
// ends (after the apps, whose cleanups run first because they are
// registered later).
type shared struct {
	natsURL      string
	streamPrefix string
	redisAddr    string
	redisPrefix  string
}

func sharedServices(t *testing.T) shared {
	t.Helper()
	s := shared{
		natsURL:   testenv.NATSURL(t),
		redisAddr: testenv.RedisAddr(t),
	}
	id := testenv.RandomID()
	s.streamPrefix = "RFT_" + strings.ToUpper(id)
	s.redisPrefix = "rftest:" + id + ":"
	cleanupStreams(t, s.natsURL, s.streamPrefix)
	cleanupRedisPrefix(t, s.redisAddr, s.redisPrefix)
	return s
}

// configure points an App's config at the shared services.
func (s shared) configure(c *config.Config) {
	c.NATS.URL = s.natsURL
	c.NATS.StreamPrefix = s.streamPrefix
	c.Redis.Addr = s.redisAddr
	c.Redis.Prefix = s.redisPrefix
}

// cleanupStreams deletes every stream named prefix_* when the test ends.
func cleanupStreams(t *testing.T, url, prefix string) {
	t.Helper()
	t.Cleanup(func() {
		nc, err := nats.Connect(url, nats.Timeout(3*time.Second))
		if err != nil {
			t.Logf("cleanup: nats connect: %v", err)
			return
		}
		defer nc.Close()
		js, err := jetstream.New(nc)
		if err != nil {
			t.Logf("cleanup: jetstream: %v", err)
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		lister := js.StreamNames(ctx)
		var names []string
		for name := range lister.Name() {
			if strings.HasPrefix(name, prefix+"_") {
				names = append(names, name)
			}
		}
		if err := lister.Err(); err != nil {
			t.Logf("cleanup: listing streams: %v", err)
		}
		for _, name := range names {
			if err := js.DeleteStream(ctx, name); err != nil {
				t.Logf("cleanup: delete stream %s: %v", name, err)
			}
		}
	})
}

// cleanupRedisPrefix deletes every key under prefix when the test ends
// (never FLUSHDB: other packages' tests share the server).
func cleanupRedisPrefix(t *testing.T, addr, prefix string) {
	t.Helper()
	t.Cleanup(func() {
		c := redis.NewClient(&redis.Options{Addr: addr, DialTimeout: time.Second})
		defer c.Close()
		if err := testenv.DeletePrefix(c, prefix); err != nil {
			t.Logf("cleanup: %v", err)
		}
	})
}

// needBinary returns the path of a server binary, skipping locally and
// failing under CI=true when it is missing (like testenv does for
// services).
func needBinary(t *testing.T, path string) string {
	t.Helper()
	if _, err := os.Stat(path); err == nil {
		return path
	}
	if p, err := exec.LookPath(filepath.Base(path)); err == nil {
		return p
	}
	if testenv.InCI() {
		t.Fatalf("%s not installed (needed under CI=true)", path)
	}
	t.Skipf("%s not installed (set CI=true to fail instead)", path)
	return ""
}

// proc is a child process whose output is kept for failure messages.
type proc struct {
	name string
	cmd  *exec.Cmd
	out  *lockedBuffer
	done chan struct{}
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// tail returns the last n lines of the output.
func (p *proc) tail(n int) string {
	var lines []string
	sc := bufio.NewScanner(strings.NewReader(p.out.String()))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// startProc starts a process that is SIGKILLed (if still running) when the
// test ends.
func startProc(t *testing.T, name string, cmd *exec.Cmd) *proc {
	t.Helper()
	p := &proc{name: name, cmd: cmd, out: &lockedBuffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.out, p.out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() { _ = cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		p.kill()
		if t.Failed() {
			t.Logf("%s output (last lines):\n%s", name, p.tail(40))
		}
	})
	return p
}

// kill sends SIGKILL and waits for the process to be gone.
func (p *proc) kill() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
	}
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// waitTCP waits until addr accepts connections (or p exits).
func waitTCP(t *testing.T, p *proc, addr string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return
		}
		if p != nil && p.exited() {
			t.Fatalf("%s exited before listening on %s:\n%s", p.name, addr, p.tail(40))
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not listening on %s after %s", p.name, addr, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// startRedisServer runs our own redis-server (no persistence) on port.
func startRedisServer(t *testing.T, bin string, port int) *proc {
	t.Helper()
	cmd := exec.Command(bin, "--port", fmt.Sprint(port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", t.TempDir())
	p := startProc(t, fmt.Sprintf("redis-server:%d", port), cmd)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	waitTCP(t, p, addr, 10*time.Second)
	c := redis.NewClient(&redis.Options{Addr: addr})
	defer c.Close()
	deadline := time.Now().Add(10 * time.Second)
	for c.Ping(context.Background()).Err() != nil {
		if time.Now().After(deadline) {
			t.Fatalf("redis-server on %s never answered PING", addr)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return p
}

// startNATSServer runs our own nats-server with JetStream on port, storing
// in storeDir.
func startNATSServer(t *testing.T, bin string, port int, storeDir string) *proc {
	t.Helper()
	cmd := exec.Command(bin, "-a", "127.0.0.1", "-p", fmt.Sprint(port), "-js", "-sd", storeDir)
	p := startProc(t, fmt.Sprintf("nats-server:%d", port), cmd)
	waitTCP(t, p, fmt.Sprintf("127.0.0.1:%d", port), 10*time.Second)
	return p
}

// result is one HTTP answer.
type result struct {
	status  int
	body    map[string]any
	raw     string
	elapsed time.Duration
	err     error // transport error (no answer)
}

var testClient = &http.Client{Timeout: 10 * time.Second}

// call makes one request; a transport error is returned in result.err, not
// fatal, so fault tests can tell "no answer" from a status.
func call(method, url, tok string, body any) result {
	var r io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, url, r)
	if err != nil {
		return result{err: err}
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	start := time.Now()
	resp, err := testClient.Do(req)
	if err != nil {
		return result{err: err, elapsed: time.Since(start)}
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	out := result{status: resp.StatusCode, raw: string(raw), elapsed: time.Since(start)}
	_ = json.Unmarshal(raw, &out.body)
	return out
}

// mustCall fails the test unless the request answers want.
func mustCall(t *testing.T, want int, method, url, tok string, body any) result {
	t.Helper()
	r := call(method, url, tok, body)
	if r.err != nil {
		t.Fatalf("%s %s: %v", method, url, r.err)
	}
	if r.status != want {
		t.Fatalf("%s %s: status %d, want %d: %s", method, url, r.status, want, r.raw)
	}
	return r
}

// poll calls cond until it reports done or timeout passes; it returns how
// long it took and the last note cond gave.
func poll(timeout time.Duration, cond func() (bool, string)) (time.Duration, bool, string) {
	return pollEvery(10*time.Millisecond, timeout, cond)
}

// pollEvery is poll with a chosen interval.
func pollEvery(interval, timeout time.Duration, cond func() (bool, string)) (time.Duration, bool, string) {
	start := time.Now()
	deadline := start.Add(timeout)
	for {
		ok, note := cond()
		if ok {
			return time.Since(start), true, note
		}
		if time.Now().After(deadline) {
			return time.Since(start), false, note
		}
		time.Sleep(interval)
	}
}

// ev is one behaviour event for POST /v1/events.
func ev(id, user, video, typ string) map[string]any {
	return map[string]any{"event_id": id, "user_id": user, "video_id": video, "type": typ}
}

func eventsBody(evs []map[string]any) map[string]any {
	return map[string]any{"events": evs}
}

// counts reads GET /v1/users/{id}/profile counts ("" note on success).
func counts(base, tok, user string) (map[string]float64, string) {
	r := call("GET", base+"/v1/users/"+user+"/profile", tok, nil)
	if r.err != nil {
		return nil, r.err.Error()
	}
	if r.status != 200 {
		return nil, fmt.Sprintf("status %d: %s", r.status, r.raw)
	}
	out := map[string]float64{}
	c, _ := r.body["counts"].(map[string]any)
	for k, v := range c {
		if f, ok := v.(float64); ok {
			out[k] = f
		}
	}
	return out, r.raw
}

// feedIDs returns the video ids of one feed.
func feedIDs(t *testing.T, base, tok, user string, count int) []string {
	t.Helper()
	r := mustCall(t, 200, "GET", fmt.Sprintf("%s/v1/feed?user_id=%s&count=%d", base, user, count), tok, nil)
	return itemIDs(r)
}

func itemIDs(r result) []string {
	items, _ := r.body["items"].([]any)
	ids := make([]string, 0, len(items))
	for _, it := range items {
		if m, ok := it.(map[string]any); ok {
			if id, ok := m["video_id"].(string); ok {
				ids = append(ids, id)
			}
		}
	}
	return ids
}

func contains(ids []string, id string) bool {
	for _, x := range ids {
		if x == id {
			return true
		}
	}
	return false
}

// counterSum sums a counter family's samples whose labels include the
// given label values.
func counterSum(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metrics:
		for _, m := range mf.GetMetric() {
			for k, v := range labels {
				found := false
				for _, lp := range m.GetLabel() {
					if lp.GetName() == k && lp.GetValue() == v {
						found = true
					}
				}
				if !found {
					continue metrics
				}
			}
			sum += m.GetCounter().GetValue()
		}
	}
	return sum
}
