package main

import "github.com/spf13/cobra"

// addCommands registers the tooling subcommands built on the service.
func addCommands(root *cobra.Command, g *globalFlags) {
	root.AddCommand(
		newImportCmd(g),
		newSimulateCmd(g),
		newBenchCmd(g),
		newDemoCmd(g),
		newTrainCmd(g),
	)
}
