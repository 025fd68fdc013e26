package cli

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/pprof"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/packets-dev/packets/cmd/packets/config"
)

// App is the wiring of one packets invocation: the global flags, the
// standard streams, and what has been opened so far (closed by Close).
// Commands take it explicitly; it holds no package management logic.
type App struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	logger         *slog.Logger

	// global flags
	root, configFile string
	verbose, debug   bool
	yes              bool
	cpuProfile       string

	layout  *config.Layout
	closers []io.Closer
}

func newApp(stdin io.Reader, stdout, stderr io.Writer) *App {
	return &App{stdin: stdin, stdout: stdout, stderr: stderr, logger: slog.New(slog.DiscardHandler)}
}

// Close releases everything the commands opened, last first.
func (a *App) Close() {
	for i := len(a.closers) - 1; i >= 0; i-- {
		a.closers[i].Close()
	}
}

// startCPUProfile profiles the command until Close (hidden --cpuprofile).
func (a *App) startCPUProfile() error {
	f, err := os.Create(a.cpuProfile)
	if err != nil {
		return fmt.Errorf("--cpuprofile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return fmt.Errorf("--cpuprofile: %w", err)
	}
	a.closers = append(a.closers, closerFunc(func() error {
		pprof.StopCPUProfile()
		return f.Close()
	}))
	return nil
}

type closerFunc func() error

func (f closerFunc) Close() error { return f() }

// Layout loads the configuration once and resolves it under --root.
func (a *App) Layout() (config.Layout, error) {
	if a.layout != nil {
		return *a.layout, nil
	}
	rootDir, err := filepath.Abs(a.root)
	if err != nil {
		return config.Layout{}, fmt.Errorf("--root: %w", err)
	}
	file := a.configFile
	if file == "" {
		file = filepath.Join(rootDir, config.DefaultFile)
	}
	c, err := config.Load(file)
	if err != nil {
		return config.Layout{}, err
	}
	a.layout = &config.Layout{Root: rootDir, Config: c}
	return *a.layout, nil
}

// interactive reports whether a person is at the terminal: both stdin and
// stdout are terminals. packets never prompts otherwise.
func (a *App) interactive() bool {
	return isTerminal(a.stdin) && isTerminal(a.stdout)
}

// colorOut reports whether stdout is a terminal that may get colour.
func (a *App) colorOut() bool {
	return isTerminal(a.stdout) && os.Getenv("NO_COLOR") == "" && os.Getenv("TERM") != "dumb"
}

func isTerminal(v any) bool {
	f, ok := v.(interface{ Fd() uintptr })
	return ok && term.IsTerminal(int(f.Fd()))
}

// addCommands registers every command but version (root.go).
func (a *App) addCommands(root *cobra.Command) {
	root.AddCommand(
		newPlanCmd(a), newApplyCmd(a), newWatchCmd(a), newInstallCmd(a), newRemoveCmd(a), newUpgradeCmd(a), newWhyCmd(a),
		newSyncCmd(a), newSearchCmd(a), newInfoCmd(a), newServeCmd(a),
		newListCmd(a), newFilesCmd(a), newOwnsCmd(a), newVerifyCmd(a), newCacheCmd(a), newDBCmd(a),
		newBuildCmd(a), newKeyCmd(a), newRepoCmd(a),
		newHookChildCmd(),
	)
}
