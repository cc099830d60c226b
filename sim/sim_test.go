package sim

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"reelfeed/catalog"
	"reelfeed/event"
)

func lastLine(t *testing.T, out string) []byte {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(out), "\n")
	return []byte(lines[len(lines)-1])
}

func TestClientSidePoliciesRankOracleOverPopularOverRandom(t *testing.T) {
	opts := Options{Users: 150, Videos: 900, Rounds: 4, Seed: 3, JSON: true}
	var out bytes.Buffer
	rep, err := Compare(context.Background(), nil, opts, &out)
	if err != nil {
		t.Fatal(err)
	}
	var parsed struct {
		Policies map[string]struct {
			Reward   *float64 `json:"reward"`
			LikeRate *float64 `json:"like_rate"`
			Coverage *float64 `json:"coverage"`
		} `json:"policies"`
		Rounds []struct {
			Round    int                        `json:"round"`
			Policies map[string]json.RawMessage `json:"policies"`
		} `json:"rounds"`
	}
	if err := json.Unmarshal(lastLine(t, out.String()), &parsed); err != nil {
		t.Fatalf("last line is not the JSON report: %v\n%s", err, out.String())
	}
	for _, name := range []string{PolicyRandom, PolicyPopular, PolicyOracle} {
		p, ok := parsed.Policies[name]
		if !ok || p.Reward == nil || p.LikeRate == nil || p.Coverage == nil {
			t.Fatalf("policy %s missing or incomplete in %s", name, out.String())
		}
	}
	if _, ok := parsed.Policies[PolicyReelfeed]; ok {
		t.Fatal("reelfeed reported without a server")
	}
	if len(parsed.Rounds) != 4 || parsed.Rounds[0].Round != 1 || len(parsed.Rounds[3].Policies) != 3 {
		t.Fatalf("rounds: %+v", parsed.Rounds)
	}
	random, popular, oracle := rep.Policies[PolicyRandom], rep.Policies[PolicyPopular], rep.Policies[PolicyOracle]
	t.Logf("reward: random %.3f popular %.3f oracle %.3f", random.Reward, popular.Reward, oracle.Reward)
	if !(oracle.Reward > 2*popular.Reward && popular.Reward > 1.1*random.Reward) {
		t.Fatalf("want oracle well above popular above random: %.3f, %.3f, %.3f", oracle.Reward, popular.Reward, random.Reward)
	}
	if oracle.LikeRate <= random.LikeRate || popular.Coverage >= random.Coverage {
		t.Fatalf("like rate oracle %.3f vs random %.3f; coverage popular %.3f vs random %.3f",
			oracle.LikeRate, random.LikeRate, popular.Coverage, random.Coverage)
	}

	var again bytes.Buffer
	if _, err := Compare(context.Background(), nil, opts, &again); err != nil {
		t.Fatal(err)
	}
	if again.String() != out.String() {
		t.Fatal("the same seed gave different client-side results")
	}
}

func TestReadableReport(t *testing.T) {
	var out bytes.Buffer
	_, err := Run(context.Background(), Target{}, Options{Users: 60, Videos: 300, Rounds: 3, Seed: 1, Policy: PolicyOracle}, &out)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"policy oracle, per round:", "round", "reward", "coverage", "whole run:", "reward over rounds:", "o oracle"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, out.String())
		}
	}
}

// Client-logic test: the simulator against a minimal fake of the API.
func TestRunDrivesTheServerThroughItsAPI(t *testing.T) {
	f := newFakeServer(t)
	dir := t.TempDir()
	var out, progress bytes.Buffer
	opts := Options{Users: 40, Videos: 300, Rounds: 3, Seed: 5, JSON: true, ExportDir: dir, Progress: &progress, NewUserRate: 0.05}
	rep, err := Run(context.Background(), f.target(), opts, &out)
	if err != nil {
		t.Fatalf("%v\n%s", err, progress.String())
	}
	m, ok := rep.Policies[PolicyReelfeed]
	if !ok || len(rep.Policies) != 1 || len(rep.Rounds) != 3 {
		t.Fatalf("report %+v", rep)
	}
	if m.Served == 0 || m.Errors != 0 || m.Foreign != 0 || m.Repeats != 0 {
		t.Fatalf("summary %+v", m)
	}
	var parsed Report
	if err := json.Unmarshal(lastLine(t, out.String()), &parsed); err != nil || parsed.Policies[PolicyReelfeed].Served != m.Served {
		t.Fatalf("JSON line: %v\n%s", err, out.String())
	}

	f.mu.Lock()
	users, videos := len(f.users), len(f.videos)
	var runEvents, impressions int
	for _, ev := range f.events {
		switch {
		case ev.Type == event.Impression && ev.RequestID != "":
			t.Errorf("the simulator posted an impression for a feed response; the server publishes those: %+v", ev)
		case ev.Type == event.Impression:
			impressions++
		case ev.RequestID != "":
			runEvents++
		}
	}
	jobs := f.jobsRun["hotlist"]
	f.mu.Unlock()
	if users < 40 || videos < 300 {
		t.Fatalf("server has %d users and %d videos, want the whole world", users, videos)
	}
	if impressions == 0 || runEvents == 0 {
		t.Fatalf("history impressions %d, reactions to feeds %d", impressions, runEvents)
	}
	if jobs != 4 { // after loading and after each of 3 rounds
		t.Errorf("hotlist job ran %d times, want 4", jobs)
	}
	if n := strings.Count(progress.String(), `no job "i2i"`); n != 1 {
		t.Errorf("unknown job warned %d times, want once:\n%s", n, progress.String())
	}

	// The export holds the final world and every event, in API shapes.
	vids := readJSONL[catalog.Video](t, filepath.Join(dir, VideosFile))
	us := readJSONL[catalog.User](t, filepath.Join(dir, UsersFile))
	evs := readJSONL[event.Event](t, filepath.Join(dir, EventsFile))
	if len(vids) != videos || len(us) != users {
		t.Fatalf("export has %d videos and %d users, server %d and %d", len(vids), len(us), videos, users)
	}
	var exportedRun int
	for _, ev := range evs {
		if ev.RequestID != "" && ev.Type != event.Impression {
			exportedRun++
		}
	}
	if exportedRun != runEvents {
		t.Fatalf("export has %d reactions to feeds, the server got %d", exportedRun, runEvents)
	}
}

func readJSONL[T any](t *testing.T, path string) []T {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []T
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for line := 1; sc.Scan(); line++ {
		var v T
		dec := json.NewDecoder(bytes.NewReader(sc.Bytes()))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&v); err != nil {
			t.Fatalf("%s:%d: %v", path, line, err)
		}
		out = append(out, v)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestRunStopsWhenTheServerFails(t *testing.T) {
	f := newFakeServer(t)
	f.failFeedEvery = 1
	_, err := Run(context.Background(), f.target(), Options{Users: 20, Videos: 100, Rounds: 2, Jobs: []string{}}, &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "503") {
		t.Fatalf("err = %v, want the failing feed requests reported", err)
	}
	bad := Target{BaseURL: f.url, Token: "wrong"}
	if _, err := Run(context.Background(), bad, Options{Users: 20, Videos: 100, Rounds: 1}, &bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("err = %v, want the rejected token reported", err)
	}
}

func TestOptionsAreValidated(t *testing.T) {
	for _, o := range []Options{{FeedCount: 51}, {Policy: "best"}, {Users: -1}} {
		if _, err := Run(context.Background(), Target{}, o, &bytes.Buffer{}); err == nil {
			t.Errorf("options %+v accepted", o)
		}
	}
}

func TestDemoPrintsHowToLookAndKeepsTrafficGoing(t *testing.T) {
	f := newFakeServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel()
	var out bytes.Buffer
	if err := Demo(ctx, f.target(), Options{Users: 30, Videos: 200, Pause: 100 * time.Millisecond}, &out); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"export TOKEN='test-token'", "/v1/feed?user_id=s0-u", "debug=1", "/profile", "secretly loves", "round 1:", "round 2:"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("demo output lacks %q:\n%s", want, out.String())
		}
	}
}

func TestExportWritesAReplayableWorld(t *testing.T) {
	dir := t.TempDir()
	if err := Export(context.Background(), Options{Users: 25, Videos: 120, Seed: 9}, dir); err != nil {
		t.Fatal(err)
	}
	vids := readJSONL[catalog.Video](t, filepath.Join(dir, VideosFile))
	users := readJSONL[catalog.User](t, filepath.Join(dir, UsersFile))
	evs := readJSONL[event.Event](t, filepath.Join(dir, EventsFile))
	if len(vids) != 120 || len(users) != 25 || len(evs) == 0 {
		t.Fatalf("exported %d videos, %d users, %d events", len(vids), len(users), len(evs))
	}
	known := map[string]bool{}
	for _, v := range vids {
		v.Normalize(time.Now())
		if bad := v.Validate(); len(bad) > 0 {
			t.Fatalf("video %s: %v", v.ID, bad)
		}
		known[v.ID] = true
	}
	for _, u := range users {
		if bad := u.Validate(); len(bad) > 0 {
			t.Fatalf("user %s: %v", u.ID, bad)
		}
	}
	for _, ev := range evs {
		if !known[ev.VideoID] || ev.ID == "" || ev.TS.After(time.Now()) || ev.Category != "" {
			t.Fatalf("event %+v", ev)
		}
	}
}

// Client-logic test: BenchIngest against a fake that applies events 3ms
// after accepting them.
func TestBenchIngestMeasuresThroughputAndVisibility(t *testing.T) {
	f := newFakeServer(t)
	f.applyDelay = 3 * time.Millisecond
	res, err := BenchIngest(context.Background(), f.target(), IngestOptions{Events: 4000, Batch: 250, Concurrency: 4, Users: 50, Videos: 100, Probes: 10})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%+v", res)
	if res.Events != 4000 || res.Errors != 0 || res.Probes != 10 || res.ProbesLost != 0 {
		t.Fatalf("result %+v", res)
	}
	if res.EventsPerS <= 0 || res.EventsPerS > res.AcceptedPerS {
		t.Fatalf("end-to-end %.0f/s must be positive and at most the acceptance rate %.0f/s", res.EventsPerS, res.AcceptedPerS)
	}
	if res.P50VisibleMs < 3 || res.P99VisibleMs < res.P50VisibleMs {
		t.Fatalf("visibility p50 %.2fms p99 %.2fms; the fake applies after 3ms", res.P50VisibleMs, res.P99VisibleMs)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.events) != 4000 {
		t.Fatalf("server applied %d events", len(f.events))
	}
	for user, c := range f.counts {
		if strings.Contains(user, "-p") && appliedCount(c) != 1 {
			t.Fatalf("probe user %s got %v; probes must get exactly one event", user, c)
		}
	}
}

// Client-logic test: BenchFeed against the fake, at a fixed rate.
func TestBenchFeedHoldsTheRateAndCountsErrors(t *testing.T) {
	f := newFakeServer(t)
	opts := FeedOptions{Videos: 300, Users: 50, HistoryPerUser: 5, Rate: 200, Duration: time.Second, Warmup: -1, Jobs: []string{}}
	res, err := BenchFeed(context.Background(), f.target(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%+v", res)
	if res.Requests != 200 || res.Errors != 0 || res.RPS < 120 || res.P50Ms <= 0 || res.P99Ms < res.P50Ms {
		t.Fatalf("result %+v", res)
	}

	f2 := newFakeServer(t)
	f2.failFeedEvery = 5
	res, err = BenchFeed(context.Background(), f2.target(), opts)
	if err != nil {
		t.Fatal(err)
	}
	if res.Errors < 30 || res.Errors > 50 || !strings.Contains(res.FirstError, "503") {
		t.Fatalf("with every 5th request failing: %+v", res)
	}
}

func TestBenchesOnlyTargetLoopback(t *testing.T) {
	remote := Target{BaseURL: "http://192.0.2.10:8080", Token: "t"}
	if _, err := BenchIngest(context.Background(), remote, IngestOptions{}); err == nil || !strings.Contains(err.Error(), "loopback") {
		t.Errorf("ingest: %v", err)
	}
	if _, err := BenchFeed(context.Background(), remote, FeedOptions{}); err == nil || !strings.Contains(err.Error(), "loopback") {
		t.Errorf("feed: %v", err)
	}
	for _, ok := range []string{"http://127.0.0.1:1", "http://localhost:8080", "http://[::1]:80"} {
		if err := checkLoopback(ok, false); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}
}
