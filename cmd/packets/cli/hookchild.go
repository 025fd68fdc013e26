package cli

import (
	"os"

	"github.com/spf13/cobra"

	"github.com/packets-dev/packets/lua"
)

// hookChildCommand is the hidden subcommand the hook sandbox re-executes
// packets with: it speaks the lua package's protocol on stdin and stdout.
const hookChildCommand = "__hook-child"

func newHookChildCmd() *cobra.Command {
	return &cobra.Command{
		Use:    hookChildCommand,
		Short:  "Run package hooks in the sandbox (internal)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return lua.ServeChild(cmd.Context(), os.Stdin, os.Stdout)
		},
	}
}
