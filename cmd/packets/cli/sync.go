package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"aead.dev/minisign"
	"github.com/spf13/cobra"

	"github.com/packets-dev/packets/cmd/packets/config"
	"github.com/packets-dev/packets/fetch"
	"github.com/packets-dev/packets/packages/index"
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
		if len(urls) == 0 {
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
	res, err := index.Sync(ctx, index.SyncOptions{
		Repo: repo, Get: syncGetter{mirrors}, Keys: keys, StateDir: l.Host(l.LibDir), Mirror: record, Logger: a.logger,
	})
	if err != nil {
		return err
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

// syncGetter lets a mirror's "not found" read as the index package's, so
// that a 404 gets sync's advice rather than a network error's.
type syncGetter struct{ fetch.Mirrors }

func (g syncGetter) Get(ctx context.Context, path string, maxSize int64) (io.ReadCloser, error) {
	rc, err := g.Mirrors.Get(ctx, path, maxSize)
	if errors.Is(err, fetch.ErrNotFound) {
		return nil, fmt.Errorf("%w (%w)", index.ErrNotFound, err)
	}
	return rc, err
}
