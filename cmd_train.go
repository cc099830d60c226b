package main

import (
	"encoding/json"
	"sync"

	"github.com/spf13/cobra"

	"reelfeed/app"
	"reelfeed/config"
	"reelfeed/rank"
)

func newTrainCmd(g *globalFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "train",
		Short: "Train DeepFM (plus LR and FM baselines) on the stored samples and publish the model",
		Long: "Reads the labelled samples under rank.samples_dir (default <data_dir>/samples), trains with a time-based holdout,\n" +
			"writes a versioned model into the models dir atomically (running servers hot-reload it) and prints one JSON object:\n" +
			`{"auc", "logloss", "samples", "baselines": {"lr": {...}, "fm": {...}}, "model"}`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := config.Load(g.configPath)
			if err != nil {
				return err
			}
			store, err := rank.OpenSampleStore(app.SamplesDir(cfg))
			if err != nil {
				return err
			}
			report, err := app.Train(cmd.Context(), cfg, store, &sync.Mutex{})
			if err != nil {
				return err
			}
			return json.NewEncoder(cmd.OutOrStdout()).Encode(report)
		},
	}
}
