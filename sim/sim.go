// Package sim is reelfeed's simulated world in action: a closed-loop
// simulation that drives a server through its HTTP API with synthetic users
// whose tastes only the simulator knows, and measures how well the feed
// serves them against baselines (random, popular, oracle); a demo that keeps
// gentle traffic going; and the ingest and feed load benchmarks.
//
// The world itself is in sim/world, the open-loop load generator in
// sim/load, the API client in sim/client. Nothing here imports the server.
package sim

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"reelfeed/sim/world"
)

// StartServer starts a fresh server (an empty one: the world is loaded into
// it) and returns its address, a token with role admin or service, and a
// function that stops it.
type StartServer func(ctx context.Context) (Target, func(), error)

// Run simulates opts.Rounds rounds under opts.Policy (reelfeed: served by
// the server at target; the others need no server) and writes the report to
// out: readable, or with opts.JSON one JSON line.
func Run(ctx context.Context, target Target, opts Options, out io.Writer) (*Report, error) {
	o := opts.withDefaults()
	if err := o.validate(); err != nil {
		return nil, err
	}
	if o.Rounds == 0 {
		return nil, errors.New("sim: rounds must be >= 1 (Demo runs without end)")
	}
	res, err := runPolicy(ctx, o.Policy, target, o, o.now(), o.ExportDir, nil)
	if err != nil {
		return nil, err
	}
	rep := newReport([]*policyResult{res}, o)
	return rep, write(rep, o, out)
}

// Compare simulates the same world (same seed) under every policy: random,
// popular and oracle client-side, and reelfeed on a fresh server from
// startServer (nil: reelfeed is left out). The world and the client-side
// policies are a pure function of the seed. With opts.ExportDir, the
// export holds the world and the reelfeed run's events (without a server,
// the oracle's).
func Compare(ctx context.Context, startServer StartServer, opts Options, out io.Writer) (*Report, error) {
	o := opts.withDefaults()
	if err := o.validate(); err != nil {
		return nil, err
	}
	if o.Rounds == 0 {
		return nil, errors.New("sim: rounds must be >= 1")
	}
	wallStart := o.now()
	exportBy := PolicyOracle
	if startServer != nil {
		exportBy = PolicyReelfeed
	}
	var results []*policyResult
	for _, name := range []string{PolicyRandom, PolicyPopular, PolicyOracle} {
		res, err := runPolicy(ctx, name, Target{}, o, wallStart, exportDirFor(name, exportBy, o), nil)
		if err != nil {
			return nil, err
		}
		results = append(results, res)
	}
	if startServer != nil {
		target, stop, err := startServer(ctx)
		if err != nil {
			return nil, fmt.Errorf("sim: starting a server for the reelfeed policy: %w", err)
		}
		res, err := runPolicy(ctx, PolicyReelfeed, target, o, wallStart, exportDirFor(PolicyReelfeed, exportBy, o), nil)
		stop()
		if err != nil {
			return nil, err
		}
		results = append(results, res)
	}
	rep := newReport(results, o)
	return rep, write(rep, o, out)
}

func exportDirFor(policy, exportBy string, o Options) string {
	if policy == exportBy {
		return o.ExportDir
	}
	return ""
}

func write(rep *Report, o Options, out io.Writer) error {
	if o.JSON {
		return rep.WriteJSON(out)
	}
	return rep.WriteText(out)
}

// hooks observe a run (Demo).
type hooks struct {
	onLoaded func(w *world.World) error
	onRound  func(round int, m Metrics)
}

func runPolicy(ctx context.Context, name string, target Target, o Options, wallStart time.Time, exportDir string, h *hooks) (*policyResult, error) {
	var pol policy
	cp := clientPolicy{seed: o.Seed}
	switch name {
	case PolicyReelfeed:
		sp, err := newServerPolicy(target, o)
		if err != nil {
			return nil, err
		}
		pol = sp
	case PolicyRandom:
		pol = &randomPolicy{clientPolicy: cp}
	case PolicyPopular:
		pol = &popularPolicy{clientPolicy: cp}
	case PolicyOracle:
		pol = &oraclePolicy{clientPolicy: cp}
	default:
		return nil, fmt.Errorf("sim: unknown policy %q", name)
	}
	r := &runner{opts: o, pol: pol, wallStart: wallStart}
	r.onRound = func(round int, m Metrics) {
		total := fmt.Sprint(o.Rounds)
		if o.Rounds == 0 {
			total = "∞"
		}
		fmt.Fprintf(o.Progress, "%s round %d/%s: %d users, %d served, reward %.3f, like %s, coverage %s\n",
			name, round+1, total, m.Users, m.Served, m.Reward, pct(m.LikeRate), pct(m.Coverage))
	}
	if h != nil {
		r.onLoaded = h.onLoaded
		if h.onRound != nil {
			log := r.onRound
			r.onRound = func(round int, m Metrics) { log(round, m); h.onRound(round, m) }
		}
	}
	if exportDir != "" {
		exp, err := newExporter(exportDir)
		if err != nil {
			return nil, err
		}
		defer exp.abort()
		r.exp = exp
	}
	return r.run(ctx)
}

// Demo loads a simulated world into the server at target, prints curl
// commands to look at a user's feed, its debug explanation and profile,
// then keeps gentle traffic going (one round every opts.Pause, default 5s)
// until ctx ends, printing a line per round. Defaults are smaller than
// Run's: 200 users, 2000 videos, few uploads and sign-ups per round.
func Demo(ctx context.Context, target Target, opts Options, out io.Writer) error {
	if opts.Users == 0 {
		opts.Users = 200
	}
	if opts.Videos == 0 {
		opts.Videos = 2000
	}
	if opts.Pause == 0 {
		opts.Pause = 5 * time.Second
	}
	if opts.UploadRate == 0 {
		opts.UploadRate = 0.002
	}
	if opts.NewUserRate == 0 {
		opts.NewUserRate = 0.005
	}
	if opts.Jobs == nil {
		// Training after every few-second round would keep the server busy;
		// its own timers retrain.
		opts.Jobs = []string{"hotlist", "i2i", "usercf"}
	}
	o := opts.withDefaults()
	o.Rounds, o.Policy = 0, PolicyReelfeed
	if err := o.validate(); err != nil {
		return err
	}
	h := &hooks{
		onLoaded: func(w *world.World) error {
			_, err := io.WriteString(out, demoInstructions(target, w, o))
			return err
		},
		onRound: func(round int, m Metrics) {
			fmt.Fprintf(out, "round %d: %d users, reward %.3f, like %s, new videos %s of served\n",
				round+1, m.Users, m.Reward, pct(m.LikeRate), pct(m.NewShare))
		},
	}
	_, err := runPolicy(ctx, PolicyReelfeed, target, o, o.now(), o.ExportDir, h)
	if ctx.Err() != nil {
		return nil
	}
	return err
}

func demoInstructions(t Target, w *world.World, o Options) string {
	base := strings.TrimRight(t.BaseURL, "/")
	// A user with a history, in the biggest region, shows personalisation best.
	u := w.Users[0]
	for _, c := range w.Users {
		if c.Meta.Region == "us" && c.JoinRound < 0 {
			u = c
			break
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "\nreelfeed demo: %d users and %d videos loaded; a round of traffic every %s (Ctrl-C to stop).\n\n",
		len(w.Users), len(w.Videos), o.Pause)
	fmt.Fprintf(&b, "User %s (%d, %s, %s) secretly loves %s. Look at what reelfeed serves them:\n\n",
		u.Meta.ID, u.Meta.Age, u.Meta.Gender, u.Meta.Region, strings.Join(w.Favourites(u, 3), ", "))
	fmt.Fprintf(&b, "  export TOKEN='%s'\n", t.Token)
	auth := `-H "Authorization: Bearer $TOKEN"`
	for _, c := range []struct{ why, path string }{
		{"their feed", "/v1/feed?user_id=" + u.Meta.ID + "&count=10"},
		{"why each video was chosen: candidates per stage, features, scores", "/v1/feed?user_id=" + u.Meta.ID + "&count=10&debug=1"},
		{"what reelfeed has learned about them", "/v1/users/" + u.Meta.ID + "/profile"},
		{"a brand-new user gets a cold-start feed", "/v1/feed?user_id=newcomer-1&count=10"},
	} {
		fmt.Fprintf(&b, "  # %s\n  curl -s %s '%s%s'\n", c.why, auth, base, c.path)
	}
	b.WriteString("\n")
	return b.String()
}

// Export writes the starting world for opts (videos, users and their
// history, no server needed) to dir as JSONL files `reelfeed import` reads.
func Export(ctx context.Context, opts Options, dir string) error {
	o := opts.withDefaults()
	if err := o.validate(); err != nil {
		return err
	}
	w, err := world.Generate(worldConfig(o, simStart(o, o.now())))
	if err != nil {
		return err
	}
	exp, err := newExporter(dir)
	if err != nil {
		return err
	}
	defer exp.abort()
	for _, u := range w.Users {
		if err := ctx.Err(); err != nil {
			return err
		}
		for _, x := range w.History(u) {
			if err := exp.writeEvents(x.Events(u.Meta.ID)); err != nil {
				return err
			}
		}
	}
	return exp.finish(w)
}
