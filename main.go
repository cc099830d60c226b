// Command reelfeed is a short-video recommendation and distribution engine:
// one binary that serves personalised feeds over HTTP and learns from the
// behaviour events the app reports.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"reelfeed/app"
	"reelfeed/auth"
	"reelfeed/config"
)

func main() {
	if err := newRootCmd().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "reelfeed:", err)
		os.Exit(1)
	}
}

type globalFlags struct {
	configPath string
}

func newRootCmd() *cobra.Command {
	g := &globalFlags{}
	root := &cobra.Command{
		Use:           "reelfeed",
		Short:         "Short-video recommendation and distribution engine",
		Long:          "reelfeed serves personalised short-video feeds over HTTP and learns from behaviour events within a second.\nWith no subcommand it runs `serve`.",
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runServe(cmd.Context(), g)
		},
	}
	root.PersistentFlags().StringVar(&g.configPath, "config", "", "config file (default ./config.yaml when present)")
	root.AddCommand(
		&cobra.Command{
			Use:   "serve",
			Short: "Run the HTTP service (the default)",
			Args:  cobra.NoArgs,
			RunE:  func(cmd *cobra.Command, _ []string) error { return runServe(cmd.Context(), g) },
		},
		newTokenCmd(g),
		&cobra.Command{
			Use:   "version",
			Short: "Print the version",
			Args:  cobra.NoArgs,
			Run:   func(cmd *cobra.Command, _ []string) { fmt.Fprintln(cmd.OutOrStdout(), "reelfeed", app.Version) },
		},
	)
	addCommands(root, g)
	return root
}

func loadConfig(g *globalFlags) (*config.Config, *zap.Logger, error) {
	cfg, err := config.Load(g.configPath)
	if err != nil {
		return nil, nil, err
	}
	log, err := app.NewLogger(cfg.Log)
	if err != nil {
		return nil, nil, fmt.Errorf("log.level: %w", err)
	}
	return cfg, log, nil
}

func runServe(ctx context.Context, g *globalFlags) error {
	started := time.Now()
	cfg, log, err := loadConfig(g)
	if err != nil {
		return err
	}
	applyRuntime(cfg.Runtime)
	defer func() { _ = log.Sync() }()
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()

	a, err := app.New(ctx, cfg, log)
	if err != nil {
		return err
	}
	if err := a.Start(); err != nil {
		_ = a.Shutdown(context.Background())
		return err
	}
	log.Info("reelfeed serving",
		zap.String("version", app.Version),
		zap.String("addr", "http://"+a.Addr()),
		zap.String("data_dir", cfg.DataDir),
		zap.Bool("embedded_nats", cfg.NATS.URL == ""),
		zap.Bool("redis", cfg.Redis.Addr != "" || len(cfg.Redis.Addrs) > 0),
		zap.Bool("elasticsearch", len(cfg.Elasticsearch.URLs) > 0),
		zap.Duration("startup", time.Since(started)))

	<-ctx.Done()
	stop() // a second signal kills the process the default way
	log.Info("shutting down", zap.Duration("grace", cfg.HTTP.ShutdownGrace))
	sctx, cancel := context.WithTimeout(context.Background(), cfg.HTTP.ShutdownGrace)
	defer cancel()
	if err := a.Shutdown(sctx); err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("shutdown exceeded http.shutdown_grace (%s): %w", cfg.HTTP.ShutdownGrace, err)
		}
		return err
	}
	log.Info("stopped cleanly")
	return nil
}

func newTokenCmd(g *globalFlags) *cobra.Command {
	var sub, role string
	var ttl time.Duration
	cmd := &cobra.Command{
		Use:   "token --sub ID --role ROLE [--ttl 24h]",
		Short: "Print a bearer token signed with the configured auth.secret",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := config.Load(g.configPath)
			if err != nil {
				return err
			}
			if cfg.Auth.Secret == "" {
				return errors.New("auth.secret is not set (config.yaml or REELFEED_AUTH_SECRET): a token needs the server's secret; without one the server prints dev tokens at start")
			}
			r, err := auth.ParseRole(role)
			if err != nil {
				return err
			}
			tok, err := auth.New([]byte(cfg.Auth.Secret)).Issue(sub, r, ttl)
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), tok)
			return nil
		},
	}
	cmd.Flags().StringVar(&sub, "sub", "", "subject: the user id (or service name)")
	cmd.Flags().StringVar(&role, "role", "user", "role: user, service or admin")
	cmd.Flags().DurationVar(&ttl, "ttl", 24*time.Hour, "validity")
	_ = cmd.MarkFlagRequired("sub")
	return cmd
}

// applyRuntime sets the GC knobs from config unless the environment did.
func applyRuntime(r config.Runtime) {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(r.GCPercent)
	}
	if os.Getenv("GOMEMLIMIT") == "" && r.MemoryLimitBytes > 0 {
		debug.SetMemoryLimit(r.MemoryLimitBytes)
	}
}
