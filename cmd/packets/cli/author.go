package cli

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/packets-dev/packets/packages"
	"github.com/packets-dev/packets/packages/index"
)

// The author's side: build packages, make keys, publish a repository.

func newBuildCmd(app *App) *cobra.Command {
	var out string
	cmd := &cobra.Command{
		Use:   "build DIR -o FILE",
		Short: "Build a package archive (.tar.zst) from a source directory",
		Long: `Build a package archive from DIR, which holds manifest.toml, data/ and
optionally install.lua and remove.lua. The manifest is validated and the
archive refused if the installer would refuse it. The same input always gives
a byte-identical archive.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if out == "" {
				return errors.New("build: -o FILE is required")
			}
			if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
				return err
			}
			m, d, err := packages.BuildFile(args[0], out)
			if err != nil {
				return err
			}
			fmt.Fprintf(app.stdout, "built %s: %s %s (serial %d) sha256 %s\n", out, m.Name, m.Version, m.Serial, d)
			return nil
		},
	}
	cmd.Flags().StringVarP(&out, "output", "o", "", "write the archive to `FILE`")
	return cmd
}

func newKeyCmd(app *App) *cobra.Command {
	key := &cobra.Command{Use: "key", Short: "Manage repository signing keys"}
	var out, passwordFile string
	gen := &cobra.Command{
		Use:   "generate --out PREFIX",
		Short: "Write a minisign key pair PREFIX.key and PREFIX.pub",
		Long: `Write a minisign key pair: PREFIX.key (secret, mode 0600) and PREFIX.pub.
The secret key is unencrypted unless --password-file is given; packets never
prompts for a password. Copy PREFIX.pub to /etc/packets/keys/ on the machines
that should trust the repository.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if out == "" {
				return errors.New("key generate: --out PREFIX is required")
			}
			password, err := readPasswordFile(passwordFile)
			if err != nil {
				return err
			}
			pub, sec, err := index.GenerateKey(out, password)
			if err != nil {
				return err
			}
			fmt.Fprintf(app.stdout, "wrote %s and %s\n", sec, pub)
			return nil
		},
	}
	gen.Flags().StringVar(&out, "out", "", "write `PREFIX`.key and PREFIX.pub")
	gen.Flags().StringVar(&passwordFile, "password-file", "", "encrypt the secret key with the password in `FILE`")
	key.AddCommand(gen)
	return key
}

func readPasswordFile(path string) ([]byte, error) {
	if path == "" {
		return nil, nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("password file: %w", err)
	}
	return []byte(strings.TrimRight(string(b), "\r\n")), nil
}

func newRepoCmd(app *App) *cobra.Command {
	repo := &cobra.Command{Use: "repo", Short: "Publish a repository: index and sign, serve for testing"}
	repo.AddCommand(newRepoIndexCmd(app), newRepoServeCmd(app))
	return repo
}

func newRepoIndexCmd(app *App) *cobra.Command {
	var keyFile, passwordFile, name string
	var expires time.Duration
	cmd := &cobra.Command{
		Use:   "index DIR --key FILE",
		Short: "Index DIR/packages/*.tar.zst and sign a new release",
		Long: `Validate every archive in DIR/packages as the installer would, write
DIR/index-<version>.db and a signed DIR/release.toml. Every run publishes the
next version, even when nothing changed, so that clients can tell a fresh
release from a replayed one.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if keyFile == "" {
				return errors.New("repo index: --key FILE is required")
			}
			password, err := readPasswordFile(passwordFile)
			if err != nil {
				return err
			}
			key, err := index.LoadSecretKey(keyFile, password)
			if err != nil {
				return err
			}
			rel, err := index.BuildRepo(cmd.Context(), index.BuildOptions{
				Dir: args[0], Key: key, Repo: name, Expires: expires, Logger: app.logger,
			})
			if err != nil {
				return err
			}
			fmt.Fprintf(app.stdout, "published release %d of %s: %s (%d bytes), expires %s\n",
				rel.Version, args[0], rel.Index.File, rel.Index.Size, rel.Expires.Format(time.RFC3339))
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&keyFile, "key", "", "sign with the minisign secret key in `FILE`")
	f.StringVar(&passwordFile, "password-file", "", "the key's password is in `FILE`")
	f.StringVar(&name, "name", "", "the repository's name (default: the previous release's, else \"default\")")
	f.DurationVar(&expires, "expires", 30*24*time.Hour, "the release expires after `DURATION` (clients refuse it then)")
	return cmd
}

func newRepoServeCmd(app *App) *cobra.Command {
	var listen, urlFile string
	cmd := &cobra.Command{
		Use:   "serve DIR",
		Short: "Serve a repository directory over HTTP (for testing; any static server works)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return serveRepo(cmd.Context(), app, args[0], listen, urlFile)
		},
	}
	cmd.Flags().StringVar(&listen, "listen", "127.0.0.1:8080", "listen on `ADDR` (port 0 picks a free one)")
	cmd.Flags().StringVar(&urlFile, "url-file", "", "once listening, write the URL to `FILE` (a readiness signal)")
	return cmd
}

func serveRepo(ctx context.Context, app *App, dir, listen, urlFile string) error {
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return err
	}
	url := "http://" + ln.Addr().String()
	fs := http.FileServer(http.Dir(dir))
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if strings.HasSuffix(r.URL.Path, "/") { // no directory listings
				http.NotFound(w, r)
				return
			}
			app.logger.Info("serve", "path", r.URL.Path, "peer", r.RemoteAddr)
			fs.ServeHTTP(w, r)
		}),
		ReadHeaderTimeout: 10 * time.Second,
	}
	if urlFile != "" {
		if err := os.WriteFile(urlFile, []byte(url+"\n"), 0o644); err != nil {
			ln.Close()
			return err
		}
	}
	fmt.Fprintf(app.stdout, "serving %s at %s\n", dir, url)
	go func() {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		srv.Shutdown(shutdown)
	}()
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
