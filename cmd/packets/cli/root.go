package cli

import (
	"log/slog"
	"os"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"
)

func newRootCmd(app *App) *cobra.Command {
	root := &cobra.Command{
		Use:   "packets",
		Short: "A declarative package manager: declare the packages, packets makes it so",
		Long: `packets makes a machine converge on the packages its state file declares.

Declare packages in /etc/packets/state.hcl (and state.d/*.hcl), then run
"packets plan" to see what would change and "packets apply" to change it.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			level := slog.LevelWarn
			if app.verbose {
				level = slog.LevelInfo
			}
			if app.debug {
				level = slog.LevelDebug
			}
			app.logger = slog.New(slog.NewTextHandler(app.stderr, &slog.HandlerOptions{Level: level}))
			slog.SetDefault(app.logger)
			tuneGC(cmd)
			if app.cpuProfile != "" {
				return app.startCPUProfile()
			}
			return nil
		},
	}
	f := root.PersistentFlags()
	f.StringVar(&app.root, "root", "/", "operate on the machine rooted at `DIR`")
	f.StringVar(&app.configFile, "config", "", "configuration `FILE` (default /etc/packets/config.toml under --root)")
	f.BoolVarP(&app.verbose, "verbose", "v", false, "log what packets does (to stderr)")
	f.BoolVar(&app.debug, "debug", false, "log in detail (to stderr)")
	f.BoolVarP(&app.yes, "yes", "y", false, "answer yes to confirmations (never overrides safety guards)")
	f.StringVar(&app.cpuProfile, "cpuprofile", "", "write a CPU profile of the command to `FILE` (for go tool pprof)")
	f.MarkHidden("cpuprofile")
	root.AddCommand(newVersionCmd())
	app.addCommands(root)
	return root
}

// longRunning is the annotation of the commands that run until stopped
// (serve, watch).
const longRunning = "packets/long-running"

// tuneGC lets a one-shot command collect garbage less often: it allocates a
// few MB and exits, and a no-op apply with 1,000 installed packages spends
// a sixth of its time in the collector at the default GOGC of 100. Commands
// that run until stopped, and a GOGC set by the user, keep the default.
func tuneGC(cmd *cobra.Command) {
	if os.Getenv("GOGC") != "" || cmd.Annotations[longRunning] != "" {
		return
	}
	if f := cmd.Flags().Lookup("watch"); f != nil && f.Value.String() == "true" {
		return
	}
	debug.SetGCPercent(400)
}

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version of packets",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			v, rev := "(devel)", ""
			if bi, ok := debug.ReadBuildInfo(); ok {
				v = bi.Main.Version
				for _, s := range bi.Settings {
					if s.Key == "vcs.revision" {
						rev = " " + s.Value
					}
				}
			}
			cmd.Printf("packets %s%s %s %s/%s\n", v, rev, runtime.Version(), runtime.GOOS, runtime.GOARCH)
			return nil
		},
	}
}
