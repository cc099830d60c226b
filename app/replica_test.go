package app

// Scale-out (issue 7): two replicas in this process share the machine's
// NATS (one stream prefix per test) and Redis (one key prefix per test),
// the way several `reelfeed serve` processes share them in production.

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"reelfeed/auth"
	"reelfeed/config"
)

// twoReplicas starts two Apps on the same streams and keys.
func twoReplicas(t *testing.T, mutate func(*config.Config)) (a, b *App) {
	t.Helper()
	s := sharedServices(t)
	mk := func() *App {
		return startApp(t, func(c *config.Config) {
			s.configure(c)
			// These tests poll one user's profile every few ms; the
			// per-user limit (shared in Redis) is not what they test.
			c.RateLimit.Enabled = false
			if mutate != nil {
				mutate(c)
			}
		})
	}
	return mk(), mk()
}

func video(id, uploader, category string, quality float64) map[string]any {
	return map[string]any{"video_id": id, "uploader_id": uploader, "category": category, "quality": quality}
}

// A video written via one replica is served by the other within 2 s, and a
// delete via one removes it from the other's feeds within 2 s.
func TestReplicaCatalogWriteAndDeleteReachOtherReplica(t *testing.T) {
	a, b := twoReplicas(t, nil)
	svc := token(t, testSecret, "svc", auth.RoleService, time.Hour)

	mustCall(t, 200, "POST", a.URL()+"/v1/videos", svc, map[string]any{"videos": []map[string]any{
		video("rv1", "up1", "pets", 0.9), video("rv2", "up2", "food", 0.6), video("rv3", "up3", "sport", 0.7),
	}})
	posted := time.Now()
	took, ok, note := poll(2*time.Second, func() (bool, string) {
		r := call("GET", b.URL()+"/v1/videos/rv1", svc, nil)
		return r.err == nil && r.status == 200, fmt.Sprintf("%d %s %v", r.status, r.raw, r.err)
	})
	if !ok {
		t.Fatalf("GET /v1/videos/rv1 on replica B never found the video written via A within 2s: %s", note)
	}
	t.Logf("video visible on B (GET) after %s", took)
	users := 0
	took, ok, note = poll(2*time.Second-time.Since(posted), func() (bool, string) {
		users++
		ids := feedIDs(t, b.URL(), svc, fmt.Sprintf("fresh-%d", users), 10)
		return contains(ids, "rv1"), fmt.Sprint(ids)
	})
	if !ok {
		t.Fatalf("replica B never served rv1 (written via A) within 2s; last feed %s", note)
	}
	t.Logf("video served by B %s after the write via A returned", time.Since(posted))

	mustCall(t, 200, "DELETE", a.URL()+"/v1/videos/rv1", svc, nil)
	deleted := time.Now()
	took, ok, note = poll(2*time.Second, func() (bool, string) {
		users++
		ids := feedIDs(t, b.URL(), svc, fmt.Sprintf("fresh-%d", users), 10)
		return !contains(ids, "rv1") && len(ids) > 0, fmt.Sprint(ids)
	})
	if !ok {
		t.Fatalf("replica B still serves rv1 2s after it was deleted via A; last feed %s", note)
	}
	t.Logf("delete visible in B's feeds after %s", took)
	if r := call("GET", b.URL()+"/v1/videos/rv1", svc, nil); r.status != 404 {
		t.Fatalf("GET /v1/videos/rv1 on B %s after the delete via A: status %d, want 404: %s", time.Since(deleted), r.status, r.raw)
	}
	// The other videos survive on both replicas.
	for _, base := range []string{a.URL(), b.URL()} {
		mustCall(t, 200, "GET", base+"/v1/videos/rv2", svc, nil)
	}
}

// Events posted via one replica change the profile read via the other
// within 1 s.
func TestReplicaEventsVisibleOnOtherReplicaWithin1s(t *testing.T) {
	a, b := twoReplicas(t, nil)
	svc := token(t, testSecret, "svc", auth.RoleService, time.Hour)
	mustCall(t, 200, "POST", a.URL()+"/v1/videos", svc, map[string]any{"videos": []map[string]any{
		video("pv1", "up1", "pets", 0.9),
	}})
	for round, via := range []*App{a, b} {
		other := b
		if via == b {
			other = a
		}
		user := fmt.Sprintf("viewer%d", round)
		mustCall(t, 202, "POST", via.URL()+"/v1/events", svc, eventsBody([]map[string]any{
			ev(user+"-1", user, "pv1", "play"),
			ev(user+"-2", user, "pv1", "complete"),
			ev(user+"-3", user, "pv1", "like"),
		}))
		took, ok, note := poll(time.Second, func() (bool, string) {
			c, raw := counts(other.URL(), svc, user)
			return c["play"] == 1 && c["complete"] == 1 && c["like"] == 1, raw
		})
		if !ok {
			t.Fatalf("round %d: profile read on the other replica did not show the events within 1s: %s", round, note)
		}
		t.Logf("round %d: events visible on the other replica after %s", round, took)
	}
}

// Each event is applied exactly once across the replicas: one durable
// consumer shares the work, and a repeated event id (a client retry, via
// either replica, even at the same moment) is applied once.
func TestReplicaEventsAppliedExactlyOnce(t *testing.T) {
	a, b := twoReplicas(t, nil)
	svc := token(t, testSecret, "svc", auth.RoleService, time.Hour)
	mustCall(t, 200, "POST", a.URL()+"/v1/videos", svc, map[string]any{"videos": []map[string]any{
		video("ov1", "up1", "pets", 0.9),
	}})
	const user, perBatch, batches = "once-user", 50, 8
	const n = perBatch * batches
	types := []string{"play", "complete", "like", "share"}
	batch := func(i int) []map[string]any {
		out := make([]map[string]any, perBatch)
		for j := range out {
			k := i*perBatch + j
			out[j] = ev(fmt.Sprintf("once-%04d", k), user, "ov1", types[k%len(types)])
		}
		return out
	}
	replicas := []*App{a, b}
	for i := 0; i < batches; i++ {
		mustCall(t, 202, "POST", replicas[i%2].URL()+"/v1/events", svc, eventsBody(batch(i)))
	}
	// Retries: batch 0 again via B (first sent via A), batch 1 again via A.
	for i, via := range []*App{b, a} {
		r := mustCall(t, 202, "POST", via.URL()+"/v1/events", svc, eventsBody(batch(i)))
		if r.body["duplicates"] != float64(perBatch) {
			t.Errorf("repeated batch %d: duplicates %v, want %d: %s", i, r.body["duplicates"], perBatch, r.raw)
		}
	}
	// The same batch through both replicas at the same moment.
	var wg sync.WaitGroup
	for _, via := range replicas {
		wg.Add(1)
		go func(via *App) {
			defer wg.Done()
			r := call("POST", via.URL()+"/v1/events", svc, eventsBody(batch(batches-1)))
			if r.err != nil || r.status != 202 {
				t.Errorf("concurrent repeat: %d %v %s", r.status, r.err, r.raw)
			}
		}(via)
	}
	wg.Wait()

	want := map[string]float64{}
	for k := 0; k < n; k++ {
		want[types[k%len(types)]]++
	}
	equal := func(c map[string]float64) bool {
		for typ, w := range want {
			if c[typ] != w {
				return false
			}
		}
		return true
	}
	took, ok, note := poll(10*time.Second, func() (bool, string) {
		c, raw := counts(b.URL(), svc, user)
		return equal(c), raw
	})
	if !ok {
		t.Fatalf("profile counts never reached exactly %v: %s", want, note)
	}
	t.Logf("all %d events applied after %s", n, took)
	// Hold: nothing is applied a second time afterwards (read via both).
	hold := time.Now().Add(time.Second)
	for time.Now().Before(hold) {
		for _, r := range replicas {
			if c, raw := counts(r.URL(), svc, user); !equal(c) {
				t.Fatalf("counts moved past the %d events posted: %s (want %v)", n, raw, want)
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	// Video features too (own dedupe per event id); the feature cache
	// serves for up to feature.cache_ttl (1s).
	_, ok, note = poll(3*time.Second, func() (bool, string) {
		r := call("GET", a.URL()+"/v1/videos/ov1", svc, nil)
		f, _ := r.body["features"].(map[string]any)
		life, _ := f["lifetime"].(map[string]any)
		for typ, w := range want {
			if life[typ] != w {
				return false, r.raw
			}
		}
		return true, r.raw
	})
	if !ok {
		t.Fatalf("video lifetime features are not exactly %v: %s", want, note)
	}
	// One shared consumer: the replicas together applied each stored
	// event once (a per-replica replay would apply every event twice and
	// only the stores' dedupe would hide it).
	stream := a.cfg.NATS.StreamPrefix + "_EVENTS"
	applied := counterSum(t, a.Registry(), "reelfeed_events_applied_total", map[string]string{"stream": stream})
	appliedB := counterSum(t, b.Registry(), "reelfeed_events_applied_total", map[string]string{"stream": stream})
	t.Logf("applied by A: %v, by B: %v", applied, appliedB)
	if applied+appliedB != n {
		t.Fatalf("replicas applied %v + %v events from %s, want %d in total (each stored event applied by one replica)",
			applied, appliedB, stream, n)
	}
}

// A runtime knob changed via one replica (video blacklist) applies to the
// other replica's next feeds within 2 s, and so does lifting it.
func TestReplicaKnobsReachOtherReplica(t *testing.T) {
	a, b := twoReplicas(t, nil)
	svc := token(t, testSecret, "svc", auth.RoleService, time.Hour)
	admin := token(t, testSecret, "ops", auth.RoleAdmin, time.Hour)
	mustCall(t, 200, "POST", a.URL()+"/v1/videos", svc, map[string]any{"videos": []map[string]any{
		video("kv1", "up1", "pets", 0.9), video("kv2", "up2", "food", 0.8), video("kv3", "up3", "sport", 0.7),
	}})
	users := 0
	served := func(app *App, id string) (bool, string) {
		users++
		ids := feedIDs(t, app.URL(), svc, fmt.Sprintf("knob-user-%d", users), 10)
		return contains(ids, id), fmt.Sprint(ids)
	}
	if _, ok, note := poll(2*time.Second, func() (bool, string) { return served(b, "kv1") }); !ok {
		t.Fatalf("precondition: B never served kv1: %s", note)
	}

	mustCall(t, 200, "PUT", a.URL()+"/v1/admin/blacklist/video/kv1", admin, nil)
	took, ok, note := poll(2*time.Second, func() (bool, string) {
		in, ids := served(b, "kv1")
		return !in, ids
	})
	if !ok {
		t.Fatalf("B still serves kv1 2s after it was blacklisted via A: %s", note)
	}
	t.Logf("blacklist via A applied on B after %s", took)
	// Not a fluke of one feed: B keeps it out.
	for i := 0; i < 5; i++ {
		if in, ids := served(b, "kv1"); in {
			t.Fatalf("B served blacklisted kv1 again: %s", ids)
		}
	}
	if r := mustCall(t, 200, "GET", b.URL()+"/v1/admin/knobs", admin, nil); !strings.Contains(r.raw, `"kv1"`) {
		t.Fatalf("B's knob state lacks the blacklist written via A: %s", r.raw)
	}

	mustCall(t, 200, "DELETE", b.URL()+"/v1/admin/blacklist/video/kv1", admin, nil)
	took, ok, note = poll(2*time.Second, func() (bool, string) { return served(a, "kv1") })
	if !ok {
		t.Fatalf("A never served kv1 within 2s after the blacklist was lifted via B: %s", note)
	}
	t.Logf("lifting via B applied on A after %s", took)
}
