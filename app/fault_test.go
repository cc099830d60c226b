package app

// Faults (issue 7). Each test starts its own redis-server / nats-server on
// a free port and stops that one; the machine's shared services are never
// touched except through a prefix unique to the test.

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/redis/go-redis/v9"

	"reelfeed/auth"
	"reelfeed/config"
	"reelfeed/internal/testenv"
)

const (
	redisServerBin = "/usr/bin/redis-server"
	natsServerBin  = "/usr/sbin/nats-server"
)

// buildReelfeed builds the reelfeed binary (module root is ".." from this
// package) into the test's temp dir. One test uses it today; built per
// test rather than once per test binary because a shared dir would have no
// place to be removed without a TestMain (which app_test.go may own), and
// the go build cache makes a repeat build a link step.
func buildReelfeed(t *testing.T) string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		if testenv.InCI() {
			t.Fatalf("go toolchain not on PATH: %v", err)
		}
		t.Skipf("go toolchain not on PATH: %v", err)
	}
	bin := filepath.Join(t.TempDir(), "reelfeed")
	cmd := exec.Command(goBin, "build", "-o", bin, ".")
	cmd.Dir = ".."
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// serveProc starts `reelfeed serve` with env overrides, from an empty
// working directory (no config.yaml) and without inherited REELFEED_*.
func serveProc(t *testing.T, name, bin string, env map[string]string) (*proc, string) {
	t.Helper()
	port := testenv.FreePort(t)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	cmd := exec.Command(bin, "serve")
	cmd.Dir = t.TempDir()
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "REELFEED_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	env["REELFEED_HTTP_ADDR"] = addr
	env["REELFEED_DATA_DIR"] = filepath.Join(cmd.Dir, "data")
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	p := startProc(t, name, cmd)
	base := "http://" + addr
	if _, ok, note := poll(15*time.Second, func() (bool, string) {
		if p.exited() {
			return false, "exited"
		}
		r := call("GET", base+"/readyz", "", nil)
		return r.err == nil && r.status == 200, fmt.Sprintf("%d %s %v", r.status, r.raw, r.err)
	}); !ok {
		t.Fatalf("%s never became ready: %s\n%s", name, note, p.tail(40))
	}
	return p, base
}

// A replica killed with SIGKILL while its consumer holds delivered but
// unacknowledged events loses none of them: after ingest.ack_wait they are
// redelivered to the surviving replica, and the stores' per-event-id
// dedupe keeps whatever the dead one had already written from counting
// twice.
func TestKillReplicaRedeliversUnackedEvents(t *testing.T) {
	s := sharedServices(t)
	bin := buildReelfeed(t)
	common := func() map[string]string {
		return map[string]string{
			"REELFEED_NATS_URL":           s.natsURL,
			"REELFEED_NATS_STREAM_PREFIX": s.streamPrefix,
			"REELFEED_REDIS_ADDR":         s.redisAddr,
			"REELFEED_REDIS_PREFIX":       s.redisPrefix,
			"REELFEED_AUTH_SECRET":        testSecret,
			"REELFEED_INGEST_ACK_WAIT":    "2s",
			"REELFEED_LOG_LEVEL":          "warn",
			"REELFEED_LOG_ACCESS_LOG":     "false",
			// The test polls four users' profiles every few ms.
			"REELFEED_RATELIMIT_ENABLED": "false",
		}
	}
	envA := common()
	// A lingers up to 1s for its batches to fill, so at the kill it holds
	// delivered, unacknowledged events (the window this test is about)
	// rather than by luck of timing; the consumer's redelivery count at
	// the end proves it did.
	envA["REELFEED_INGEST_CONSUMER_WAIT"] = "1s"
	procA, baseA := serveProc(t, "replica A", bin, envA)
	_, baseB := serveProc(t, "replica B", bin, common())
	svc := token(t, testSecret, "svc", auth.RoleService, time.Hour)

	users := []string{"k0", "k1", "k2", "k3"}
	types := []string{"play", "complete", "like", "share"}
	const perBatch, batches, killAfter = 1000, 10, 2
	want := map[string]map[string]float64{}
	for _, u := range users {
		want[u] = map[string]float64{}
	}
	seq := 0
	post := func(base string) {
		evs := make([]map[string]any, perBatch)
		for j := range evs {
			u, typ := users[seq%len(users)], types[(seq/len(users))%len(types)]
			evs[j] = ev(fmt.Sprintf("kill-%06d", seq), u, "kvid", typ)
			want[u][typ]++
			seq++
		}
		mustCall(t, 202, "POST", base+"/v1/events", svc, eventsBody(evs))
	}
	for i := 0; i < killAfter; i++ {
		post(baseA)
	}
	if err := procA.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	procA.kill() // waits for it to be gone
	for i := killAfter; i < batches; i++ {
		post(baseB)
	}
	t.Logf("posted %d events (%d via A before its SIGKILL), posting took %s after the kill", seq, killAfter*perBatch, time.Since(killed))

	exact := func() (bool, string) {
		var notes []string
		for _, u := range users {
			c, raw := counts(baseB, svc, u)
			for typ, w := range want[u] {
				if c[typ] != w {
					notes = append(notes, fmt.Sprintf("%s %s: %v want %v (%s)", u, typ, c[typ], w, raw))
				}
			}
		}
		return len(notes) == 0, strings.Join(notes, "; ")
	}
	took, ok, note := poll(15*time.Second-time.Since(killed), exact)
	if !ok {
		t.Fatalf("after SIGKILL of replica A, counts via B did not reach exactly the %d posted events within 15s: %s", seq, note)
	}
	t.Logf("all %d events applied exactly once %s after the kill (%s polling)", seq, time.Since(killed), took)
	// No late double application (a second redelivery round would come
	// after another ack_wait of 2s).
	hold := time.Now().Add(2500 * time.Millisecond)
	for time.Now().Before(hold) {
		if ok, note := exact(); !ok {
			t.Fatalf("counts moved past the posted events: %s", note)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// The kill really caught events in flight: the shared consumer
	// delivered some messages more than once.
	nc, err := nats.Connect(s.natsURL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	cons, err := js.Consumer(ctx, s.streamPrefix+"_EVENTS", "applier")
	if err != nil {
		t.Fatalf("durable consumer: %v", err)
	}
	info, err := cons.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	redelivered := int64(info.Delivered.Consumer) - int64(info.Delivered.Stream)
	t.Logf("consumer: delivered stream seq %d, deliveries %d (%d redelivered), ack pending %d",
		info.Delivered.Stream, info.Delivered.Consumer, redelivered, info.NumAckPending)
	if redelivered <= 0 {
		t.Fatalf("no event was redelivered: the kill did not catch replica A holding unacked events, so this run proves nothing")
	}
}

// Redis stopped and started during traffic: feeds keep being served,
// events keep being accepted (they wait in NATS), /readyz names redis, and
// every event accepted while Redis was down is applied once it is back.
func TestFaultRedisDownAndBack(t *testing.T) {
	bin := needBinary(t, redisServerBin)
	natsURL := testenv.NATSURL(t)
	prefix := "RFT_" + strings.ToUpper(testenv.RandomID())
	cleanupStreams(t, natsURL, prefix)
	port := testenv.FreePort(t)
	redisAddr := fmt.Sprintf("127.0.0.1:%d", port)
	rs := startRedisServer(t, bin, port)

	a := startApp(t, func(c *config.Config) {
		c.NATS.URL = natsURL
		c.NATS.StreamPrefix = prefix
		c.Redis.Addr = redisAddr
		c.Redis.Prefix = "rftest:" + testenv.RandomID() + ":"
	})
	base := a.URL()
	svc := token(t, testSecret, "svc", auth.RoleService, time.Hour)
	// Enough videos that the seen user's feeds never run out of unseen ones.
	videos := catalogOf("rd", 40)
	mustCall(t, 200, "POST", base+"/v1/videos", svc, map[string]any{"videos": videos})
	mustCall(t, 202, "POST", base+"/v1/events", svc, eventsBody([]map[string]any{
		ev("seen-1", "seen", "rd0", "complete"), ev("seen-2", "seen", "rd1", "like"),
	}))
	// Rate limiting stays on (its Redis-down path is part of the traffic),
	// so profile polls keep under the per-user 20/s.
	if _, ok, note := pollEvery(100*time.Millisecond, 5*time.Second, func() (bool, string) {
		c, raw := counts(base, svc, "seen")
		return c["complete"] == 1 && c["like"] == 1, raw
	}); !ok {
		t.Fatalf("precondition: events for the seen user not applied: %s", note)
	}
	if ids := feedIDs(t, base, svc, "seen", 5); len(ids) == 0 {
		t.Fatal("precondition: empty feed for the seen user")
	}

	// Traffic throughout: feeds (each for a new user, so the catalog never
	// runs out of unseen videos) and events for another user.
	var stop atomic.Bool
	var wg sync.WaitGroup
	var mu sync.Mutex
	var trafficErrs []string
	var feeds, posts int
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; !stop.Load(); i++ {
			f := call("GET", fmt.Sprintf("%s/v1/feed?user_id=visitor%d&count=5", base, i), svc, nil)
			p := call("POST", base+"/v1/events", svc, eventsBody([]map[string]any{
				ev(fmt.Sprintf("traffic-%d", i), "traffic", fmt.Sprintf("rd%d", i%len(videos)), "play"),
			}))
			mu.Lock()
			feeds++
			posts++
			if f.err != nil || f.status != 200 {
				trafficErrs = append(trafficErrs, fmt.Sprintf("feed: %d %v %s", f.status, f.err, f.raw))
			}
			if p.err != nil || p.status != 202 {
				trafficErrs = append(trafficErrs, fmt.Sprintf("events: %d %v %s", p.status, p.err, p.raw))
			}
			mu.Unlock()
			time.Sleep(10 * time.Millisecond)
		}
	}()
	defer func() { stop.Store(true); wg.Wait() }()
	time.Sleep(100 * time.Millisecond) // some traffic with Redis up

	// Stop our redis-server (data is gone with it: no persistence).
	rc := redis.NewClient(&redis.Options{Addr: redisAddr})
	_ = rc.ShutdownNoSave(context.Background()).Err() // the connection closes under it
	rc.Close()
	select {
	case <-rs.done:
	case <-time.After(5 * time.Second):
		rs.kill()
	}
	down := time.Now()

	if _, ok, note := poll(5*time.Second, func() (bool, string) {
		r := call("GET", base+"/readyz", "", nil)
		return r.status == 503 && strings.Contains(r.raw, "redis"), fmt.Sprintf("%d %s", r.status, r.raw)
	}); !ok {
		t.Fatalf("/readyz with Redis down: want 503 naming redis, got %s", note)
	}
	// A feed for the user seen before: 200 with items, and none it played
	// (the replica's last-known profile).
	r := mustCall(t, 200, "GET", base+"/v1/feed?user_id=seen&count=5&debug=1", svc, nil)
	ids := itemIDs(r)
	if len(ids) == 0 {
		t.Fatalf("feed with Redis down is empty: %s", r.raw)
	}
	if contains(ids, "rd0") || contains(ids, "rd1") {
		t.Fatalf("feed with Redis down serves a video the user already played: %v", ids)
	}
	t.Logf("feed for the seen user with Redis down: %d items in %s", len(ids), r.elapsed)
	// Events for a fresh user, all posted while Redis is down.
	const freshBatches, perBatch = 5, 100
	freshWant := map[string]float64{}
	types := []string{"play", "complete", "like", "skip"}
	for i := 0; i < freshBatches; i++ {
		evs := make([]map[string]any, perBatch)
		for j := range evs {
			k := i*perBatch + j
			evs[j] = ev(fmt.Sprintf("fresh-%04d", k), "fresh", fmt.Sprintf("rd%d", k%len(videos)), types[k%len(types)])
			freshWant[types[k%len(types)]]++
		}
		r := call("POST", base+"/v1/events", svc, eventsBody(evs))
		if r.err != nil || r.status != 202 {
			t.Fatalf("POST /v1/events with Redis down: %d %v %s (want 202: events wait in NATS)", r.status, r.err, r.raw)
		}
	}
	if r := call("GET", base+"/readyz", "", nil); r.status != 503 {
		t.Fatalf("/readyz turned %d while Redis is still down: %s", r.status, r.raw)
	}
	time.Sleep(300 * time.Millisecond) // let traffic and consumer retries run against the outage
	t.Logf("Redis down for %s", time.Since(down))

	startRedisServer(t, bin, port)
	took, ok, note := pollEvery(100*time.Millisecond, 15*time.Second, func() (bool, string) {
		c, raw := counts(base, svc, "fresh")
		for typ, w := range freshWant {
			if c[typ] != w {
				return false, raw
			}
		}
		return true, raw
	})
	if !ok {
		t.Fatalf("events accepted while Redis was down were not all applied within 15s after it returned; want %v, got %s", freshWant, note)
	}
	t.Logf("all %d events accepted during the outage applied %s after Redis returned", freshBatches*perBatch, took)
	hold := time.Now().Add(500 * time.Millisecond)
	for time.Now().Before(hold) {
		c, raw := counts(base, svc, "fresh")
		for typ, w := range freshWant {
			if c[typ] != w {
				t.Fatalf("counts moved past the events posted during the outage: %s (want %v)", raw, freshWant)
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	if _, ok, note := poll(5*time.Second, func() (bool, string) {
		r := call("GET", base+"/readyz", "", nil)
		return r.status == 200, fmt.Sprintf("%d %s", r.status, r.raw)
	}); !ok {
		t.Fatalf("/readyz not 200 after Redis returned: %s", note)
	}
	stop.Store(true)
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	t.Logf("traffic during the test: %d feeds, %d event posts", feeds, posts)
	if len(trafficErrs) > 0 {
		t.Fatalf("%d traffic requests failed around the Redis outage; first: %s", len(trafficErrs), trafficErrs[0])
	}
}

// While Redis is down a feed must stay a feed: answered from the replica's
// in-memory state promptly (the pipeline's own budgets are milliseconds),
// not after every Redis call on the request path (rate limiter, profile,
// features) has exhausted the client's dial and command retries.
func TestFaultRedisDownFeedLatency(t *testing.T) {
	bin := needBinary(t, redisServerBin)
	natsURL := testenv.NATSURL(t)
	prefix := "RFT_" + strings.ToUpper(testenv.RandomID())
	cleanupStreams(t, natsURL, prefix)
	port := testenv.FreePort(t)
	redisAddr := fmt.Sprintf("127.0.0.1:%d", port)
	rs := startRedisServer(t, bin, port)
	a := startApp(t, func(c *config.Config) {
		c.NATS.URL = natsURL
		c.NATS.StreamPrefix = prefix
		c.Redis.Addr = redisAddr
		c.Redis.Prefix = "rftest:" + testenv.RandomID() + ":"
	})
	base := a.URL()
	svc := token(t, testSecret, "svc", auth.RoleService, time.Hour)
	mustCall(t, 200, "POST", base+"/v1/videos", svc, map[string]any{"videos": catalogOf("lt", 40)})
	if ids := feedIDs(t, base, svc, "seen", 5); len(ids) == 0 {
		t.Fatal("precondition: empty feed")
	}
	rs.kill()

	const bound = time.Second
	for _, user := range []string{"seen", "newcomer"} {
		r := mustCall(t, 200, "GET", base+"/v1/feed?user_id="+user+"&count=5&debug=1", svc, nil)
		if len(itemIDs(r)) == 0 {
			t.Errorf("feed for %s with Redis down is empty: %s", user, r.raw)
		}
		if r.elapsed > bound {
			t.Errorf("feed for %s with Redis down took %s, want under %s (stages: %s)", user, r.elapsed, bound, stageTimes(r))
		} else {
			t.Logf("feed for %s with Redis down: %s", user, r.elapsed)
		}
	}
	r := call("GET", base+"/readyz", "", nil)
	if r.err != nil || r.status != 503 {
		t.Errorf("/readyz with Redis down: %d %v %s, want 503", r.status, r.err, r.raw)
	}
	// Not asserted (no contract number), but a probe with a 1s timeout
	// would see a timeout rather than the 503.
	t.Logf("/readyz with Redis down answered %d in %s", r.status, r.elapsed)
}

// stageTimes summarises a debug feed's per-stage milliseconds.
func stageTimes(r result) string {
	dbg, _ := r.body["debug"].(map[string]any)
	stages, _ := dbg["stages"].([]any)
	var parts []string
	for _, st := range stages {
		m, _ := st.(map[string]any)
		if ms, _ := m["ms"].(float64); ms >= 1 {
			parts = append(parts, fmt.Sprintf("%v %.0fms", m["stage"], ms))
		}
	}
	return strings.Join(parts, ", ")
}

// NATS unreachable: POST /v1/events answers 503 within the publish timeout
// (never 202), feeds are still served, /readyz names nats; when NATS is
// back, events are accepted again and every 202 was really stored.
func TestFaultNATSDown(t *testing.T) {
	bin := needBinary(t, natsServerBin)
	port := testenv.FreePort(t)
	store := t.TempDir()
	ns := startNATSServer(t, bin, port, store)
	const publishTimeout = time.Second
	a := startApp(t, func(c *config.Config) {
		c.NATS.URL = fmt.Sprintf("nats://127.0.0.1:%d", port)
		c.NATS.PublishTimeout = publishTimeout
		c.RateLimit.Enabled = false // the recovery poll posts every few ms
	})
	base := a.URL()
	svc := token(t, testSecret, "svc", auth.RoleService, time.Hour)
	// Enough videos that the feeds below never run out of unseen ones.
	mustCall(t, 200, "POST", base+"/v1/videos", svc, map[string]any{"videos": catalogOf("nv", 30)})
	accepted := map[string]float64{} // type → events answered 202 for user "nd"
	seq := 0
	postND := func() result {
		typ := []string{"play", "like"}[seq%2]
		r := call("POST", base+"/v1/events", svc, eventsBody([]map[string]any{ev(fmt.Sprintf("nd-%d", seq), "nd", "nv1", typ)}))
		seq++
		if r.err == nil && r.status == 202 {
			accepted[typ]++
		}
		return r
	}
	for i := 0; i < 4; i++ {
		if r := postND(); r.status != 202 {
			t.Fatalf("precondition: POST /v1/events %d: %s", r.status, r.raw)
		}
	}
	if ids := feedIDs(t, base, svc, "nd", 5); len(ids) == 0 {
		t.Fatal("precondition: empty feed")
	}

	ns.kill()
	down := time.Now()
	if _, ok, note := poll(5*time.Second, func() (bool, string) {
		r := call("GET", base+"/readyz", "", nil)
		return r.status == 503 && strings.Contains(r.raw, "nats"), fmt.Sprintf("%d %s", r.status, r.raw)
	}); !ok {
		t.Fatalf("/readyz with NATS down: want 503 naming nats, got %s", note)
	}
	t.Logf("/readyz reported nats down %s after the kill", time.Since(down))
	for i := 0; i < 5; i++ {
		r := postND()
		if r.err != nil {
			t.Fatalf("POST /v1/events with NATS down: no answer: %v", r.err)
		}
		if r.status != 503 {
			t.Fatalf("POST /v1/events with NATS down: status %d, want 503: %s", r.status, r.raw)
		}
		if r.elapsed > publishTimeout+time.Second {
			t.Fatalf("POST /v1/events with NATS down took %s, want within the publish timeout %s", r.elapsed, publishTimeout)
		}
		if !strings.Contains(r.raw, `"error"`) {
			t.Fatalf("503 without the error shape: %s", r.raw)
		}
	}
	for i := 0; i < 3; i++ {
		r := call("GET", base+"/v1/feed?user_id=nd&count=5&debug=1", svc, nil)
		if r.err != nil || r.status != 200 {
			t.Fatalf("GET /v1/feed with NATS down: %d %v %s, want 200", r.status, r.err, r.raw)
		}
		if len(itemIDs(r)) == 0 {
			t.Fatalf("feed with NATS down is empty: %s", r.raw)
		}
	}
	if r := call("POST", base+"/v1/videos", svc, map[string]any{"videos": []map[string]any{video("nv-new", "up-new", "pets", 0.5)}}); r.status != 503 {
		t.Fatalf("POST /v1/videos with NATS down: %d, want 503: %s", r.status, r.raw)
	}

	// NATS back (same store): events are accepted again and every event
	// that was answered 202 is applied.
	startNATSServer(t, bin, port, store)
	took, ok, note := poll(15*time.Second, func() (bool, string) {
		r := postND()
		return r.status == 202, fmt.Sprintf("%d %s", r.status, r.raw)
	})
	if !ok {
		t.Fatalf("POST /v1/events never answered 202 again after NATS returned: %s", note)
	}
	t.Logf("events accepted again %s after NATS returned", took)
	took, ok, note = poll(10*time.Second, func() (bool, string) {
		c, raw := counts(base, svc, "nd")
		for typ, w := range accepted {
			if c[typ] != w {
				return false, raw
			}
		}
		return true, raw
	})
	if !ok {
		t.Fatalf("after NATS returned, profile counts are not exactly the 202-accepted events %v: %s", accepted, note)
	}
	t.Logf("every 202-accepted event applied %s later", took)
	if _, ok, note := poll(5*time.Second, func() (bool, string) {
		r := call("GET", base+"/readyz", "", nil)
		return r.status == 200, fmt.Sprintf("%d %s", r.status, r.raw)
	}); !ok {
		t.Fatalf("/readyz not 200 after NATS returned: %s", note)
	}
	shut := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := a.Shutdown(ctx); err != nil {
		t.Fatalf("shutdown after NATS returned: %v", err)
	}
	t.Logf("shutdown after NATS returned took %s", time.Since(shut))
}

// catalogOf is n valid videos prefix0..prefix(n-1), distinct uploaders.
func catalogOf(prefix string, n int) []map[string]any {
	cats := []string{"pets", "food", "sport", "music", "travel"}
	out := make([]map[string]any, n)
	for i := range out {
		out[i] = video(fmt.Sprintf("%s%d", prefix, i), fmt.Sprintf("%s-up%d", prefix, i), cats[i%len(cats)], 0.3+0.6*float64(i%10)/10)
	}
	return out
}
