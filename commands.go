package main

import "github.com/spf13/cobra"

// addCommands registers the tooling subcommands (import, simulate, bench,
// train) built on the running service.
func addCommands(root *cobra.Command, g *globalFlags) {
	root.AddCommand(newImportCmd(g))
}
