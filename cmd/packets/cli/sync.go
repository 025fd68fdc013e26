package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"time"

	"aead.dev/minisign"
	"github.com/spf13/cobra"

	"github.com/packets-dev/packets/cmd/packets/config"
	"github.com/packets-dev/packets/fetch"
	"github.com/packets-dev/packets/packages/index"
	"github.com/packets-dev/packets/peer"
)

func newSyncCmd(app *App) *cobra.Command {
	return &cobra.Command{
		Use:   "sync [URL]",
		Short: "Fetch and verify every repository's signed release and index",
		Long: `Fetch release.toml and its signature from each repository's mirrors, verify it
against the trusted keys (/etc/packets/keys/*.pub), refuse a rollback or an
expired release, then fetch the index, check its hash and switch to it
atomically. With URL, sync the default repository from URL and remember it
as its mirror.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			url := ""
			if len(args) == 1 {
				url = args[0]
			}
			return app.syncAll(cmd.Context(), url)
		},
	}
}

// syncAll syncs every configured repository, holding the writers' lock.
// url, when given, is tried first for the default repository and recorded.
func (a *App) syncAll(ctx context.Context, url string) error {
	l, err := a.Layout()
	if err != nil {
		return err
	}
	lk, err := acquireLock(ctx, l.LockFile(), 30*time.Second, nil)
	if err != nil {
		return err
	}
	defer lk.Close()
	synced := 0
	var errs []error
	for _, repo := range l.RepoNames() {
		urls, err := a.mirrorsOf(repo)
		if err != nil {
			return err
		}
		record := ""
		if repo == config.DefaultRepo && url != "" {
			urls, record = append([]string{url}, urls...), url
		}
		if len(urls) == 0 && !l.Peer.Enabled {
			continue // a default repository nobody configured
		}
		if err := a.syncRepo(ctx, l, repo, urls, record); err != nil {
			errs = append(errs, fmt.Errorf("sync %s repository: %w", repoName(repo), err))
			continue
		}
		synced++
	}
	if synced == 0 && len(errs) == 0 {
		return errors.New("no repository to sync: run packets sync URL, or set mirrors in config.toml")
	}
	return errors.Join(errs...)
}

func (a *App) syncRepo(ctx context.Context, l config.Layout, repo string, urls []string, record string) error {
	keys, err := a.trustedKeys(l, repo)
	if err != nil {
		return err
	}
	mirrors, err := fetch.ParseMirrors(urls, fetch.NewClient())
	if err != nil {
		return err
	}
	get := &syncGetter{sources: []index.Getter{mirrors}}
	if src := a.peerSource(l); src != nil {
		// A machine with no route to the mirror syncs from a neighbour;
		// what it serves is verified exactly as a mirror's release is.
		get.sources = append(get.sources, &peer.Repo{Source: src, Name: repoName(repo)})
	}
	res, err := index.Sync(ctx, index.SyncOptions{
		Repo: repo, Get: get, Keys: keys, StateDir: l.Host(l.LibDir), Mirror: record, Logger: a.logger,
	})
	if err != nil {
		return err
	}
	if err := a.keepRelease(l, repo, get.kept, res.Release); err != nil {
		a.logger.Warn("keep the release for LAN peers", "repo", repoName(repo), "err", err)
	}
	state := "up to date"
	if res.Changed {
		state = fmt.Sprintf("updated from release %d", res.Previous)
		if res.Previous == 0 {
			state = "new"
		}
	}
	fmt.Fprintf(a.stdout, "%s repository: release %d (%s), expires %s\n",
		repoName(repo), res.Release.Version, state, res.Release.Expires.Format(time.DateOnly))
	return nil
}

// trustedKeys are the keys a repository's releases must be signed with: the
// ones its config lists, else every key in the keys directory.
func (a *App) trustedKeys(l config.Layout, repo string) ([]minisign.PublicKey, error) {
	for _, r := range l.Repos {
		if r.Name == repo && len(r.Keys) > 0 {
			keys := make([]minisign.PublicKey, 0, len(r.Keys))
			for _, k := range r.Keys {
				pk, err := index.LoadPublicKey(l.Host(k))
				if err != nil {
					return nil, err
				}
				keys = append(keys, pk)
			}
			return keys, nil
		}
	}
	return index.LoadTrustedKeys(l.Host(l.KeysDir))
}

func repoName(repo string) string {
	if repo == config.DefaultRepo {
		return "default"
	}
	return repo
}

// syncGetter reads a repository's files from its mirrors, then from LAN
// peers, and keeps the small signed files it read so that this machine can
// serve them to its neighbours after the sync verified them. A mirror's
// "not found" reads as the index package's, so that a 404 gets sync's advice.
type syncGetter struct {
	sources []index.Getter
	kept    map[string][]byte // release.toml and its signature, as read
}

func (g *syncGetter) Get(ctx context.Context, name string, maxSize int64) (io.ReadCloser, error) {
	var errs []error
	for _, src := range g.sources {
		rc, err := src.Get(ctx, name, maxSize)
		if err == nil {
			if name != "release.toml" && name != "release.toml.minisig" {
				return rc, nil
			}
			b, err := io.ReadAll(io.LimitReader(rc, maxSize))
			rc.Close()
			if err != nil {
				return nil, err
			}
			if g.kept == nil {
				g.kept = map[string][]byte{}
			}
			g.kept[name] = b
			return io.NopCloser(bytes.NewReader(b)), nil
		}
		if errors.Is(err, fetch.ErrNotFound) {
			err = fmt.Errorf("%w (%w)", index.ErrNotFound, err)
		}
		errs = append(errs, err)
	}
	return nil, errors.Join(errs...)
}

// keepRelease stores the verified release, its signature and its index
// under /var/lib/packets/repos/NAME, where packets serve offers them to LAN
// peers (which verify them again, as they would a mirror's).
func (a *App) keepRelease(l config.Layout, repo string, kept map[string][]byte, rel index.Release) error {
	if kept["release.toml"] == nil || kept["release.toml.minisig"] == nil {
		return nil // unchanged release: what is kept is still current
	}
	dir := l.Host(path.Join(l.LibDir, "repos", repoName(repo)))
	tmp := dir + ".tmp"
	os.RemoveAll(tmp)
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		return err
	}
	for name, b := range kept {
		if err := os.WriteFile(filepath.Join(tmp, name), b, 0o644); err != nil {
			return err
		}
	}
	if err := os.Link(index.IndexPath(l.Host(l.LibDir), repo), filepath.Join(tmp, rel.Index.File)); err != nil {
		return err
	}
	os.RemoveAll(dir)
	return os.Rename(tmp, dir)
}
