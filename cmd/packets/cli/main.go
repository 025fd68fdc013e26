package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// Exit codes (terraform's): 0 ok, 1 error, 2 changes (with --detailed-exitcode).
const (
	ExitOK      = 0
	ExitError   = 1
	ExitChanges = 2
)

// exitCode is returned by a command that wants a specific exit status
// without an error message (plan --detailed-exitcode, owns on an unowned path).
type exitCode int

func (e exitCode) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

// Main runs packets with the process's arguments and standard streams and
// returns the exit code. main is os.Exit(Main()); testscript calls MainExit.
func Main() int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return Run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
}

// MainExit is Main followed by os.Exit, the shape testscript.Main wants.
func MainExit() { os.Exit(Main()) }

// Run runs packets with explicit arguments and streams.
func Run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	app := newApp(stdin, stdout, stderr)
	defer app.Close()
	root := newRootCmd(app)
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	var code exitCode
	switch {
	case err == nil:
		return ExitOK
	case errors.As(err, &code):
		return int(code)
	}
	fmt.Fprintf(stderr, "packets: %v\n", err)
	return ExitError
}
