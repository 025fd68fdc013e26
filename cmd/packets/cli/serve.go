package cli

import (
	"errors"
	"fmt"
	"os"
	"path"

	"github.com/spf13/cobra"

	"github.com/packets-dev/packets/cmd/packets/config"
	"github.com/packets-dev/packets/peer"
	"github.com/packets-dev/packets/reconcile"
)

// The LAN daemon: packets serve [init|stop|status].

// servePIDFile is the daemon's pid file, a machine path under --root.
const servePIDFile = "/run/packets/serve.pid"

func newServeCmd(app *App) *cobra.Command {
	serve := &cobra.Command{
		Use:         "serve",
		Annotations: map[string]string{longRunning: "true"},
		Short:       "Run the LAN peer daemon in the foreground (for systemd)",
		Long: `Answer LAN peers' queries for archives this machine has in its cache (UDP,
port [peer] udp_port, default 1333) and serve them read-only over HTTP (port
[peer] http_port, default 9123), with the verified repository files, so that
neighbours download from here instead of the mirror. "serve init" starts it in
the background, "serve stop" stops it, "serve status" shows it.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			l, err := app.Layout()
			if err != nil {
				return err
			}
			d := &peer.Daemon{Server: app.peerServer(l), PIDFile: l.Host(servePIDFile)}
			return d.Run(cmd.Context())
		},
	}
	serve.AddCommand(
		&cobra.Command{
			Use:   "init",
			Short: "Start the LAN daemon in the background; return once it listens",
			Args:  cobra.NoArgs,
			RunE: func(cmd *cobra.Command, _ []string) error {
				l, err := app.Layout()
				if err != nil {
					return err
				}
				self, err := selfCommand()
				if err != nil {
					return err
				}
				args := []string{"packets", "--root", l.Root}
				if app.configFile != "" {
					args = append(args, "--config", app.configFile)
				}
				if app.verbose {
					args = append(args, "-v")
				}
				pidFile, logFile := l.Host(servePIDFile), l.Host(path.Join(l.LibDir, "serve.log"))
				for _, dir := range []string{path.Dir(pidFile), path.Dir(logFile)} {
					if err := os.MkdirAll(dir, 0o755); err != nil {
						return err
					}
				}
				pid, err := peer.Start(cmd.Context(), peer.StartOptions{
					Path: self, Args: append(args, "serve"), PIDFile: pidFile,
					LogFile: logFile,
				})
				var running *peer.RunningError
				if errors.As(err, &running) {
					fmt.Fprintf(app.stdout, "already running (pid %d)\n", running.PID)
					return nil
				}
				if err != nil {
					return err
				}
				fmt.Fprintf(app.stdout, "started (pid %d)\n", pid)
				return nil
			},
		},
		&cobra.Command{
			Use:   "stop",
			Short: "Stop the LAN daemon",
			Args:  cobra.NoArgs,
			RunE: func(cmd *cobra.Command, _ []string) error {
				l, err := app.Layout()
				if err != nil {
					return err
				}
				err = peer.Stop(cmd.Context(), l.Host(servePIDFile))
				if errors.Is(err, peer.ErrNotRunning) {
					fmt.Fprintln(app.stdout, "not running")
					return nil
				}
				if err == nil {
					fmt.Fprintln(app.stdout, "stopped")
				}
				return err
			},
		},
		newServeStatusCmd(app),
	)
	return serve
}

func newServeStatusCmd(app *App) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show whether the LAN daemon runs, its ports and how many archives it serves",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			l, err := app.Layout()
			if err != nil {
				return err
			}
			st, err := peer.ReadStatus(l.Host(servePIDFile), app.cacheOf(l))
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(app.stdout, struct {
					FormatVersion int `json:"format_version"`
					peer.Status
				}{reconcile.JSONVersion, st})
			}
			if !st.Running {
				fmt.Fprintf(app.stdout, "not running; %d archive(s) in the cache\n", st.Blobs)
				return exitCode(ExitError)
			}
			fmt.Fprintf(app.stdout, "running (pid %d): UDP %d, HTTP %d, serving %d archive(s)\n", st.PID, st.UDPPort, st.HTTPPort, st.Blobs)
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print a versioned JSON document")
	return cmd
}

func (a *App) peerConfig(l config.Layout) peer.Config {
	return peer.Config{UDPPort: l.Peer.UDPPort, HTTPPort: l.Peer.HTTPPort, Interfaces: l.Peer.Interfaces,
		Window: l.Peer.Window, Logger: a.logger}
}

// peerServer serves this machine's cache and the repository files its last
// syncs verified.
func (a *App) peerServer(l config.Layout) *peer.Server {
	repos := map[string]string{}
	for _, repo := range l.RepoNames() {
		dir := l.Host(path.Join(l.LibDir, "repos", repoName(repo)))
		if _, err := os.Stat(dir); err == nil {
			repos[repoName(repo)] = dir
		}
	}
	return &peer.Server{Cache: a.cacheOf(l), Config: a.peerConfig(l), Repos: repos, Key: hostKey(l)}
}

// peerSource is the LAN source for fetches, or nil when peering is off.
func (a *App) peerSource(l config.Layout) *peer.Source {
	if !l.Peer.Enabled {
		return nil
	}
	return &peer.Source{Config: a.peerConfig(l), Key: hostKey(l)}
}

// hostKey is the machine's key among hosts fetching a blob at once: from
// the machine id under the root (/etc/machine-id), which the daemon and
// the client read alike. Without one it is 0, and both use the key of the
// machine's addresses (peer.InterfaceKey).
func hostKey(l config.Layout) peer.HostKey {
	id, err := os.ReadFile(l.Host("/etc/machine-id"))
	if err != nil {
		return 0
	}
	return peer.MachineKey(string(id))
}
