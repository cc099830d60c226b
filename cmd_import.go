package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"reelfeed/auth"
	"reelfeed/config"
	"reelfeed/ingest"
)

// clientFlags say which running server a tooling command talks to.
type clientFlags struct {
	server string
	token  string
}

func (c *clientFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&c.server, "server", "", "base URL of a running reelfeed (default: http://<http.addr>)")
	cmd.Flags().StringVar(&c.token, "token", "", "bearer token (default: $REELFEED_TOKEN, else an admin token minted from auth.secret)")
}

// resolve fills defaults from the config: the server address and, when the
// config has the secret, a short-lived admin token.
func (c *clientFlags) resolve(cfg *config.Config) (server, token string, err error) {
	server, token = c.server, c.token
	if server == "" {
		server = "http://" + cfg.HTTP.Addr
	}
	if token == "" {
		token = os.Getenv("REELFEED_TOKEN")
	}
	if token == "" {
		if cfg.Auth.Secret == "" {
			return "", "", errors.New("no token: pass --token (the server prints dev tokens at start) or set auth.secret / REELFEED_TOKEN")
		}
		token, err = auth.New([]byte(cfg.Auth.Secret)).Issue("reelfeed-cli", auth.RoleAdmin, time.Hour)
	}
	return server, token, err
}

func newImportCmd(g *globalFlags) *cobra.Command {
	var cf clientFlags
	var o ingest.ImportOptions
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "import [--videos F] [--users F] [--events F]",
		Short: "Load JSONL videos, users and events into a running server through its API",
		Long: "Loads JSON Lines files (one API object per line: see docs/data-formats.md) through the HTTP API in batches.\n" +
			"Every line is checked first; an invalid line stops the import with its file and line number (or is skipped with --skip-invalid).",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.Videos == "" && o.Users == "" && o.Events == "" {
				return errors.New("nothing to import: give --videos, --users and/or --events")
			}
			cfg, err := config.Load(g.configPath)
			if err != nil {
				return err
			}
			o.BaseURL, o.Token, err = cf.resolve(cfg)
			if err != nil {
				return err
			}
			o.Limits = ingest.EventLimits{MaxBatch: cfg.Ingest.MaxBatch, MaxFutureSkew: cfg.Ingest.MaxFutureSkew, MaxPastAge: cfg.Ingest.MaxPastAge}
			o.Progress = cmd.ErrOrStderr()
			start := time.Now()
			res, err := ingest.Import(cmd.Context(), o)
			if err != nil {
				return err
			}
			if asJSON {
				return json.NewEncoder(cmd.OutOrStdout()).Encode(res)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "imported %d videos, %d users, %d events in %s", res.Videos, res.Users, res.Events, time.Since(start).Round(time.Millisecond))
			if res.Skipped > 0 {
				fmt.Fprintf(cmd.OutOrStdout(), " (%d invalid lines skipped)", res.Skipped)
			}
			fmt.Fprintln(cmd.OutOrStdout())
			for _, e := range res.Invalid {
				fmt.Fprintln(cmd.ErrOrStderr(), "skipped", e.Error())
			}
			return nil
		},
	}
	cf.register(cmd)
	cmd.Flags().StringVar(&o.Videos, "videos", "", "JSONL file of videos")
	cmd.Flags().StringVar(&o.Users, "users", "", "JSONL file of users")
	cmd.Flags().StringVar(&o.Events, "events", "", "JSONL file of events")
	cmd.Flags().IntVar(&o.Batch, "batch", 1000, "objects per request (max 1000)")
	cmd.Flags().BoolVar(&o.SkipInvalid, "skip-invalid", false, "import valid lines and report invalid ones instead of stopping")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the result as JSON")
	return cmd
}
