package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"reelfeed/app"
	"reelfeed/auth"
	"reelfeed/config"
	"reelfeed/sim"
)

// embeddedServer starts a fresh reelfeed in a temp dir on a free loopback
// port (the same wiring as `serve`, with its own secret), for commands run
// without --server.
func embeddedServer(g *globalFlags, quiet bool) sim.StartServer {
	return func(ctx context.Context) (sim.Target, func(), error) {
		cfg, err := config.Load(g.configPath)
		if err != nil {
			return sim.Target{}, nil, err
		}
		dir, err := os.MkdirTemp("", "reelfeed-sim-")
		if err != nil {
			return sim.Target{}, nil, err
		}
		applyRuntime(cfg.Runtime) // the server shares this process: give it the serving GC settings
		cfg.DataDir = dir
		cfg.HTTP.Addr = "127.0.0.1:0"
		cfg.Auth.Secret = auth.RandomSecret()
		cfg.Log.AccessLog = false
		// The simulator drives many users through one token: the per-user
		// limit still applies, per simulated user.
		log := zap.NewNop()
		if !quiet {
			if log, err = app.NewLogger(config.Log{Level: "warn", Format: "console"}); err != nil {
				return sim.Target{}, nil, err
			}
		}
		a, err := app.New(ctx, cfg, log)
		if err != nil {
			os.RemoveAll(dir)
			return sim.Target{}, nil, err
		}
		if err := a.Start(); err != nil {
			_ = a.Shutdown(context.Background())
			os.RemoveAll(dir)
			return sim.Target{}, nil, err
		}
		tok, err := a.Authority().Issue("simulator", auth.RoleAdmin, 24*time.Hour)
		if err != nil {
			return sim.Target{}, nil, err
		}
		stop := func() {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			_ = a.Shutdown(ctx)
			os.RemoveAll(dir)
		}
		return sim.Target{BaseURL: a.URL(), Token: tok}, stop, nil
	}
}

// target resolves --server/--token, or starts an embedded server.
func (c *clientFlags) target(ctx context.Context, g *globalFlags) (sim.Target, func(), error) {
	if c.server == "" {
		return embeddedServer(g, true)(ctx)
	}
	cfg, err := config.Load(g.configPath)
	if err != nil {
		return sim.Target{}, nil, err
	}
	server, token, err := c.resolve(cfg)
	if err != nil {
		return sim.Target{}, nil, err
	}
	return sim.Target{BaseURL: server, Token: token}, func() {}, nil
}

func interruptible(cmd *cobra.Command) (context.Context, context.CancelFunc) {
	return signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
}

func newSimulateCmd(g *globalFlags) *cobra.Command {
	var cf clientFlags
	var o sim.Options
	var compare bool
	cmd := &cobra.Command{
		Use:   "simulate",
		Short: "Drive reelfeed with a simulated world that has hidden ground truth, and report how well it recommends",
		Long: "Generates creators, videos and users with hidden tastes, asks the server for each user's feed every round,\n" +
			"samples each user's response from their hidden taste and posts it back as events.\n" +
			"Without --server it starts an embedded server in a temp dir. --compare runs the same world (same seed)\n" +
			"under four policies: reelfeed, random, popular and oracle (the upper bound). See docs/simulation.md.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, cancel := interruptible(cmd)
			defer cancel()
			o.Progress = cmd.ErrOrStderr()
			out := cmd.OutOrStdout()
			if compare {
				start := embeddedServer(g, true)
				if cf.server != "" {
					return errors.New("--compare needs a fresh server per run: omit --server to use embedded ones")
				}
				_, err := sim.Compare(ctx, start, o, out)
				return err
			}
			t, stop, err := cf.target(ctx, g)
			if err != nil {
				return err
			}
			defer stop()
			_, err = sim.Run(ctx, t, o, out)
			return err
		},
	}
	cf.register(cmd)
	f := cmd.Flags()
	f.IntVar(&o.Users, "users", 500, "starting users (each with a history)")
	f.IntVar(&o.Videos, "videos", 3000, "starting catalog size")
	f.IntVar(&o.Rounds, "rounds", 10, "rounds to simulate")
	f.Int64Var(&o.Seed, "seed", 1, "world seed (the world and client-side policies are a pure function of it)")
	f.IntVar(&o.FeedCount, "feed-count", 10, "videos per feed request")
	f.BoolVar(&o.JSON, "json", false, "print one JSON line instead of the readable report")
	f.BoolVar(&compare, "compare", false, "run reelfeed, random, popular and oracle on the same world")
	f.StringVar(&o.ExportDir, "export", "", "write the world as videos.jsonl, users.jsonl, events.jsonl into DIR")
	f.IntVar(&o.Concurrency, "concurrency", 8, "simulated users talking to the server at once")
	return cmd
}

func newBenchCmd(g *globalFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "End-to-end benchmarks over HTTP (embedded server unless --server)",
	}
	cmd.AddCommand(newBenchIngestCmd(g), newBenchFeedCmd(g))
	return cmd
}

func newBenchIngestCmd(g *globalFlags) *cobra.Command {
	var cf clientFlags
	var o sim.IngestOptions
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "ingest",
		Short: "Post N events over HTTP in batches; report throughput and how fast events become visible in profiles",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o.Progress = cmd.ErrOrStderr()
			return runBench(cmd, g, &cf, asJSON, func(ctx context.Context, t sim.Target) (any, error) {
				return sim.BenchIngest(ctx, t, o)
			})
		},
	}
	cf.register(cmd)
	f := cmd.Flags()
	f.IntVar(&o.Events, "events", 100000, "events to post")
	f.IntVar(&o.Batch, "batch", 500, "events per request")
	f.IntVar(&o.Concurrency, "concurrency", 8, "requests in flight")
	f.IntVar(&o.Users, "users", 1000, "distinct users")
	f.IntVar(&o.Videos, "videos", 1000, "distinct videos")
	f.Float64Var(&o.Rate, "rps", 0, "events per second to offer (0: as fast as possible)")
	f.BoolVar(&asJSON, "json", false, "print one JSON line")
	return cmd
}

func newBenchFeedCmd(g *globalFlags) *cobra.Command {
	var cf clientFlags
	var o sim.FeedOptions
	var asJSON bool
	var cpuProfile, heapProfile string
	cmd := &cobra.Command{
		Use:   "feed",
		Short: "Build a world with history, then drive GET /v1/feed at a fixed rate (open loop); report latency percentiles",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o.Progress = cmd.ErrOrStderr()
			for _, profile := range []struct {
				path string
				dst  *io.Writer
			}{{cpuProfile, &o.CPUProfile}, {heapProfile, &o.HeapProfile}} {
				if profile.path == "" {
					continue
				}
				f, err := os.Create(profile.path)
				if err != nil {
					return err
				}
				defer f.Close()
				*profile.dst = f
			}
			return runBench(cmd, g, &cf, asJSON, func(ctx context.Context, t sim.Target) (any, error) {
				return sim.BenchFeed(ctx, t, o)
			})
		},
	}
	cf.register(cmd)
	f := cmd.Flags()
	f.StringVar(&cpuProfile, "cpuprofile", "", "write a CPU profile of the measured phase to this file (go tool pprof)")
	f.StringVar(&heapProfile, "memprofile", "", "write a heap profile (live objects) taken after the measured phase to this file (go tool pprof)")
	f.IntVar(&o.Videos, "videos", 10000, "catalog size")
	f.IntVar(&o.Users, "users", 5000, "users with history")
	f.Float64Var(&o.Rate, "rps", 100, "feed requests per second (fixed rate, open loop)")
	f.DurationVar(&o.Duration, "duration", 30*time.Second, "how long to drive load")
	f.BoolVar(&o.Reuse, "reuse", false, "the --server already holds this world (same --videos and --users): skip loading it and the jobs")
	f.BoolVar(&asJSON, "json", false, "print one JSON line")
	return cmd
}

// runBench resolves the target (embedded unless --server), runs one bench
// and prints its result.
func runBench(cmd *cobra.Command, g *globalFlags, cf *clientFlags, asJSON bool, bench func(context.Context, sim.Target) (any, error)) error {
	ctx, cancel := interruptible(cmd)
	defer cancel()
	t, stop, err := cf.target(ctx, g)
	if err != nil {
		return err
	}
	defer stop()
	res, err := bench(ctx, t)
	if err != nil {
		return err
	}
	return printResult(cmd, asJSON, res)
}

func printResult(cmd *cobra.Command, asJSON bool, res any) error {
	if asJSON {
		return json.NewEncoder(cmd.OutOrStdout()).Encode(res)
	}
	b, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return err
	}
	fmt.Fprintln(cmd.OutOrStdout(), string(b))
	return nil
}

func newDemoCmd(g *globalFlags) *cobra.Command {
	var cf clientFlags
	var o sim.Options
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Serve on embedded defaults, load a simulated world, keep gentle traffic going and print curl commands",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, cancel := interruptible(cmd)
			defer cancel()
			var t sim.Target
			stop := func() {}
			var err error
			if cf.server == "" {
				t, stop, err = demoServer(ctx, g)
			} else {
				t, stop, err = cf.target(ctx, g)
			}
			if err != nil {
				return err
			}
			defer stop()
			o.Progress = cmd.ErrOrStderr()
			return sim.Demo(ctx, t, o, cmd.OutOrStdout())
		},
	}
	cf.register(cmd)
	f := cmd.Flags()
	f.IntVar(&o.Users, "users", 200, "starting users")
	f.IntVar(&o.Videos, "videos", 2000, "starting catalog")
	f.Int64Var(&o.Seed, "seed", 1, "world seed")
	return cmd
}

// demoServer runs the service like `make run` does (config http.addr, a
// demo data dir) so the printed curl commands work from another shell.
func demoServer(ctx context.Context, g *globalFlags) (sim.Target, func(), error) {
	cfg, err := config.Load(g.configPath)
	if err != nil {
		return sim.Target{}, nil, err
	}
	dir, err := os.MkdirTemp("", "reelfeed-demo-")
	if err != nil {
		return sim.Target{}, nil, err
	}
	cfg.DataDir = dir
	if cfg.Auth.Secret == "" {
		cfg.Auth.Secret = auth.RandomSecret()
	}
	cfg.Log.AccessLog = false
	log, err := app.NewLogger(config.Log{Level: "warn", Format: "console"})
	if err != nil {
		return sim.Target{}, nil, err
	}
	a, err := app.New(ctx, cfg, log)
	if err != nil {
		return sim.Target{}, nil, err
	}
	if err := a.Start(); err != nil {
		_ = a.Shutdown(context.Background())
		return sim.Target{}, nil, err
	}
	tok, err := a.Authority().Issue("demo", auth.RoleAdmin, 24*time.Hour)
	if err != nil {
		return sim.Target{}, nil, err
	}
	return sim.Target{BaseURL: a.URL(), Token: tok}, func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = a.Shutdown(ctx)
		os.RemoveAll(dir)
	}, nil
}
