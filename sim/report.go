package sim

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"strings"
	"text/tabwriter"
)

// Metrics measure one policy over one round or a whole run. Rates are per
// served item.
type Metrics struct {
	// Reward is the mean watch fraction per served item: what the
	// recommender is for.
	Reward       float64 `json:"reward"`
	LikeRate     float64 `json:"like_rate"`
	CompleteRate float64 `json:"complete_rate"`
	// Coverage is the share of the catalog served at least once so far.
	Coverage float64 `json:"coverage"`
	// NewShare is the share of served items uploaded during the run.
	NewShare float64 `json:"new_share"`
	// ColdReward is the reward on the first feed of users who joined during
	// the run (cold start); absent when no such user was served.
	ColdReward *float64 `json:"cold_reward,omitempty"`
	Users      int      `json:"users"`
	Served     int      `json:"served"`
	Errors     int      `json:"errors,omitempty"`
	// Foreign counts served videos the simulated world does not know (a
	// server with other data); they are not scored.
	Foreign int `json:"foreign,omitempty"`
	// Repeats counts videos served to a user who had already seen them;
	// the user swipes past them.
	Repeats int `json:"repeats,omitempty"`
}

type tally struct {
	users, served, likes, completes, newServed int
	coldServed, errors, foreign, repeats       int
	watch, coldWatch                           float64
}

func (t *tally) add(it servedItem, cold bool) {
	t.served++
	t.watch += it.response.WatchFraction
	if it.response.Like {
		t.likes++
	}
	if it.response.Complete {
		t.completes++
	}
	if it.video.Round >= 0 {
		t.newServed++
	}
	if cold {
		t.coldServed++
		t.coldWatch += it.response.WatchFraction
	}
}

func (t *tally) merge(o tally) {
	t.users += o.users
	t.served += o.served
	t.likes += o.likes
	t.completes += o.completes
	t.newServed += o.newServed
	t.coldServed += o.coldServed
	t.errors += o.errors
	t.foreign += o.foreign
	t.repeats += o.repeats
	t.watch += o.watch
	t.coldWatch += o.coldWatch
}

func (t tally) metrics(coverage float64) Metrics {
	per := func(x float64) float64 {
		if t.served == 0 {
			return 0
		}
		return x / float64(t.served)
	}
	m := Metrics{
		Reward:       per(t.watch),
		LikeRate:     per(float64(t.likes)),
		CompleteRate: per(float64(t.completes)),
		Coverage:     coverage,
		NewShare:     per(float64(t.newServed)),
		Users:        t.users,
		Served:       t.served,
		Errors:       t.errors,
		Foreign:      t.foreign,
		Repeats:      t.repeats,
	}
	if t.coldServed > 0 {
		c := t.coldWatch / float64(t.coldServed)
		m.ColdReward = &c
	}
	return m
}

// Report is a simulation's outcome: per policy over the whole run, and per
// round. Its JSON form is the line `reelfeed simulate --json` prints.
type Report struct {
	Policies map[string]Metrics `json:"policies"`
	Rounds   []RoundReport      `json:"rounds"`
	world    worldSummary
	order    []string // policies in the order they are shown
}

// RoundReport is one round under every policy that ran.
type RoundReport struct {
	Round    int                `json:"round"` // from 1
	Policies map[string]Metrics `json:"policies"`
}

type worldSummary struct {
	users, videos, rounds int
	joined, uploaded      int
	seed                  int64
}

func newReport(results []*policyResult, o Options) *Report {
	rep := &Report{Policies: map[string]Metrics{}}
	for _, name := range Policies() {
		for _, res := range results {
			if res.name == name {
				rep.order = append(rep.order, name)
			}
		}
	}
	for _, res := range results {
		rep.Policies[res.name] = res.summary
		for i, m := range res.rounds {
			for len(rep.Rounds) <= i {
				rep.Rounds = append(rep.Rounds, RoundReport{Round: len(rep.Rounds) + 1, Policies: map[string]Metrics{}})
			}
			rep.Rounds[i].Policies[res.name] = m
		}
		w := res.world
		rep.world = worldSummary{
			users: o.Users, videos: o.Videos, rounds: len(res.rounds), seed: o.Seed,
			joined: len(w.Users) - o.Users, uploaded: len(w.Videos) - o.Videos,
		}
	}
	return rep
}

// WriteJSON writes the report as one line.
func (r *Report) WriteJSON(out io.Writer) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(out, "%s\n", b)
	return err
}

// WriteText writes the readable report: a table per round, a summary per
// policy, how reelfeed compares, and a plot of reward over rounds.
func (r *Report) WriteText(out io.Writer) error {
	var b strings.Builder
	ws := r.world
	fmt.Fprintf(&b, "simulated world: seed %d, %d users (+%d joined), %d videos (+%d uploaded), %d rounds\n\n",
		ws.seed, ws.users, ws.joined, ws.videos, ws.uploaded, ws.rounds)
	if len(r.order) == 1 {
		r.singleTable(&b, r.order[0])
	} else {
		r.compareTable(&b)
	}
	b.WriteString("\n")
	r.summaryTable(&b)
	if line := r.verdict(); line != "" {
		b.WriteString("\n" + line + "\n")
	}
	b.WriteString("\n")
	r.plot(&b, 12, 60)
	_, err := io.WriteString(out, b.String())
	return err
}

func pct(x float64) string { return fmt.Sprintf("%.1f%%", 100*x) }

func cold(m Metrics) string {
	if m.ColdReward == nil {
		return "-"
	}
	return fmt.Sprintf("%.3f", *m.ColdReward)
}

func (r *Report) singleTable(b *strings.Builder, name string) {
	fmt.Fprintf(b, "policy %s, per round:\n", name)
	tw := tabwriter.NewWriter(b, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "round\tusers\tserved\treward\tlike\tcomplete\tcoverage\tnew\tcold reward\terrors\t")
	for _, rr := range r.Rounds {
		m := rr.Policies[name]
		fmt.Fprintf(tw, "%d\t%d\t%d\t%.3f\t%s\t%s\t%s\t%s\t%s\t%d\t\n", rr.Round, m.Users, m.Served, m.Reward,
			pct(m.LikeRate), pct(m.CompleteRate), pct(m.Coverage), pct(m.NewShare), cold(m), m.Errors)
	}
	tw.Flush()
}

func (r *Report) compareTable(b *strings.Builder) {
	b.WriteString("reward per round:\n")
	tw := tabwriter.NewWriter(b, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprint(tw, "round\t")
	for _, name := range r.order {
		fmt.Fprintf(tw, "%s\t", name)
	}
	fmt.Fprintln(tw)
	for _, rr := range r.Rounds {
		fmt.Fprintf(tw, "%d\t", rr.Round)
		for _, name := range r.order {
			if m, ok := rr.Policies[name]; ok {
				fmt.Fprintf(tw, "%.3f\t", m.Reward)
			} else {
				fmt.Fprint(tw, "-\t")
			}
		}
		fmt.Fprintln(tw)
	}
	tw.Flush()
}

func (r *Report) summaryTable(b *strings.Builder) {
	b.WriteString("whole run:\n")
	tw := tabwriter.NewWriter(b, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "policy\treward\tlike\tcomplete\tcoverage\tnew\tcold reward\tserved\terrors\t")
	for _, name := range r.order {
		m := r.Policies[name]
		fmt.Fprintf(tw, "%s\t%.3f\t%s\t%s\t%s\t%s\t%s\t%d\t%d\t\n", name, m.Reward, pct(m.LikeRate), pct(m.CompleteRate),
			pct(m.Coverage), pct(m.NewShare), cold(m), m.Served, m.Errors)
	}
	tw.Flush()
}

// verdict says how reelfeed stands against the baselines and whether it
// learned: the numbers the quality bar is about.
func (r *Report) verdict() string {
	rf, ok := r.Policies[PolicyReelfeed]
	if !ok || len(r.Rounds) == 0 {
		return ""
	}
	var parts []string
	if p, ok := r.Policies[PolicyPopular]; ok && p.Reward > 0 {
		parts = append(parts, fmt.Sprintf("%.2fx popular", rf.Reward/p.Reward))
	}
	if o, ok := r.Policies[PolicyOracle]; ok && o.Reward > 0 {
		parts = append(parts, fmt.Sprintf("%.0f%% of oracle", 100*rf.Reward/o.Reward))
	}
	first := r.Rounds[0].Policies[PolicyReelfeed].Reward
	last := r.Rounds[len(r.Rounds)-1].Policies[PolicyReelfeed].Reward
	parts = append(parts, fmt.Sprintf("round 1 -> %d: %.3f -> %.3f", len(r.Rounds), first, last))
	return fmt.Sprintf("reelfeed: reward %.3f, %s", rf.Reward, strings.Join(parts, ", "))
}

func plotSymbol(policy string) byte {
	switch policy {
	case PolicyReelfeed:
		return '*'
	case PolicyRandom:
		return '.'
	case PolicyPopular:
		return 'p'
	case PolicyOracle:
		return 'o'
	}
	return '?'
}

// plot draws reward over rounds, one symbol per policy, reelfeed on top.
func (r *Report) plot(b *strings.Builder, height, maxWidth int) {
	n := len(r.Rounds)
	if n == 0 {
		return
	}
	top := 0.0
	for _, rr := range r.Rounds {
		for _, m := range rr.Policies {
			top = math.Max(top, m.Reward)
		}
	}
	top = math.Max(0.1, math.Ceil(top*10)/10)
	// Each round gets `step` columns; long runs are averaged into buckets.
	cols, step := n, max(1, min(5, maxWidth/n))
	if n > maxWidth {
		cols, step = maxWidth, 1
	}
	grid := make([][]byte, height)
	for i := range grid {
		grid[i] = []byte(strings.Repeat(" ", cols*step))
	}
	draw := append([]string(nil), r.order...)
	for i, name := range draw { // reelfeed last, so it is never hidden
		if name == PolicyReelfeed {
			draw = append(append(draw[:i:i], draw[i+1:]...), name)
			break
		}
	}
	for _, name := range draw {
		for c := 0; c < cols; c++ {
			lo, hi := c*n/cols, (c+1)*n/cols
			sum, k := 0.0, 0
			for i := lo; i < hi; i++ {
				if m, ok := r.Rounds[i].Policies[name]; ok {
					sum += m.Reward
					k++
				}
			}
			if k == 0 {
				continue
			}
			row := height - 1 - int(math.Round(sum/float64(k)/top*float64(height-1)))
			grid[min(max(row, 0), height-1)][c*step+step/2] = plotSymbol(name)
		}
	}
	b.WriteString("reward over rounds:\n")
	for i, line := range grid {
		label := "      "
		if i == 0 || i == height-1 || i == (height-1)/2 {
			label = fmt.Sprintf("%5.2f ", top*float64(height-1-i)/float64(height-1))
		}
		b.WriteString(label + "|" + strings.TrimRight(string(line), " ") + "\n")
	}
	b.WriteString("      +" + strings.Repeat("-", cols*step) + "\n")
	fmt.Fprintf(b, "       round 1%s%d\n", strings.Repeat(" ", max(1, cols*step-7-len(fmt.Sprint(n)))), n)
	var legend []string
	for _, name := range r.order {
		legend = append(legend, fmt.Sprintf("%c %s", plotSymbol(name), name))
	}
	b.WriteString("       " + strings.Join(legend, "   ") + "\n")
}
