package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"strings"
	"sync"

	"github.com/packets-dev/packets/cmd/packets/config"
	"github.com/packets-dev/packets/fetch"
	"github.com/packets-dev/packets/lua"
	"github.com/packets-dev/packets/packages"
	"github.com/packets-dev/packets/packages/index"
	"github.com/packets-dev/packets/packages/installed"
	"github.com/packets-dev/packets/peer"
)

// cache is the content-addressed archive cache of the machine.
func (m *machine) cache() *fetch.Cache { return m.app.cacheOf(m.layout) }

func (a *App) cacheOf(l config.Layout) *fetch.Cache {
	return &fetch.Cache{Dir: l.Host(l.CacheDir), Logger: a.logger}
}

// mirrorsOf lists a repository's mirrors: those in config.toml, then the
// one `packets sync URL` remembered.
func (a *App) mirrorsOf(repo string) ([]string, error) {
	l, err := a.Layout()
	if err != nil {
		return nil, err
	}
	var urls []string
	if repo == "" {
		urls = append(urls, l.Mirrors...)
	}
	for _, r := range l.Repos {
		if r.Name == repo {
			urls = append(urls, r.Mirrors...)
		}
	}
	if st, err := index.ReadSyncState(l.Host(l.LibDir), repo); err == nil && st.Mirror != "" && !contains(urls, st.Mirror) {
		urls = append(urls, st.Mirror)
	}
	return urls, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// archiveFetcher adapts fetch.Fetcher to reconcile.Fetcher: one Fetcher per
// repository, since each has its own mirrors.
type archiveFetcher struct {
	m       *machine
	cache   *fetch.Cache
	offline bool
	obs     fetch.Observer
	peers   *peer.Source // nil unless [peer] enabled: asked before the mirrors
}

func (m *machine) fetcher(offline bool) *archiveFetcher {
	return &archiveFetcher{m: m, cache: m.cache(), offline: offline, obs: m.app.fetchObserver(),
		peers: m.app.peerSource(m.layout)}
}

func (f *archiveFetcher) Fetch(ctx context.Context, builds []*packages.Available, ready func(packages.Digest, string)) (map[packages.Digest]string, error) {
	byRepo := map[string][]fetch.Want{}
	var order []string
	for _, b := range builds {
		if _, seen := byRepo[b.Repo]; !seen {
			order = append(order, b.Repo)
		}
		byRepo[b.Repo] = append(byRepo[b.Repo], fetch.WantFor(*b))
	}
	from := map[packages.Digest]string{}
	for _, repo := range order {
		urls, err := f.m.app.mirrorsOf(repo)
		if err != nil {
			return nil, err
		}
		mirrors, err := fetch.ParseMirrors(urls, fetch.NewClient())
		if err != nil {
			return nil, err
		}
		sources := mirrors.Sources()
		if f.peers != nil {
			sources = append([]fetch.Source{f.peers}, sources...)
		}
		// VerifyCached: a cached archive is hashed again before it is used.
		// The cache is a plain directory; a blob damaged there since it was
		// fetched must be refused (and fetched again), never parsed.
		fr := &fetch.Fetcher{
			Cache: f.cache, Sources: sources, Parallel: f.m.layout.Fetch.Parallel, VerifyCached: true,
			Offline: f.offline || len(sources) == 0, Observer: f.obs, Logger: f.m.app.logger,
		}
		if ready != nil {
			fr.Ready = func(r fetch.Result) { ready(r.Digest, f.source(r)) }
		}
		results, err := fr.FetchAll(ctx, byRepo[repo])
		if err != nil {
			return nil, err
		}
		for _, r := range results {
			from[r.Digest] = f.source(r)
		}
	}
	return from, nil
}

// source names where r came from: the peer's address rather than "peers".
func (f *archiveFetcher) source(r fetch.Result) string {
	if f.peers != nil {
		if addr, ok := f.peers.Origin(r.Digest); ok {
			return "peer " + addr.String()
		}
	}
	return r.Source
}

func (f *archiveFetcher) Open(d packages.Digest) (io.ReadCloser, error) { return f.cache.Open(d) }

// hookRunner runs package hooks in one sandbox child process per command,
// started on the first hook (a plan without hooks starts none).
type hookRunner struct {
	m       *machine
	mu      sync.Mutex
	session *lua.Session
	binDir  bool // made
	closed  bool
	// ownersFor is the session that has the owners of bin dir paths of
	// installed.db generation ownersAt (nil: none has any yet).
	ownersFor *lua.Session
	ownersAt  installed.Generation
}

func (m *machine) hookRunner() *hookRunner {
	if m.hooks == nil {
		m.hooks = &hookRunner{m: m}
		m.closers = append(m.closers, m.hooks)
	}
	return m.hooks
}

// RunHook implements reconcile.HookRunner and installed.HookFunc.
func (h *hookRunner) RunHook(ctx context.Context, pkg *installed.Package, script string, src []byte) ([]string, error) {
	return h.SendHook(ctx, pkg, script, src)()
}

// SendHook implements reconcile.HookRunner and installed.HookSend: the
// sandbox child gets the hook at once, and reads it as soon as the hook
// before it is done.
func (h *hookRunner) SendHook(ctx context.Context, pkg *installed.Package, script string, src []byte) func() ([]string, error) {
	s, err := h.start(ctx)
	if err != nil {
		return func() ([]string, error) { return nil, err }
	}
	if err := h.setOwners(ctx, s); err != nil {
		return func() ([]string, error) { return nil, err }
	}
	l := h.m.layout
	sent := s.Send(ctx, lua.Hook{
		Package: string(pkg.Name), Script: script, Source: src, Root: l.Root,
		PackageDir: pkg.DataDir, DataDir: path.Join(pkg.DataDir, packages.DataDir), BinDir: l.BinDir,
		Options: pkg.Options,
	})
	return func() ([]string, error) {
		res, err := sent.Wait(ctx)
		if out := strings.TrimSpace(res.Output); out != "" {
			h.m.app.logger.Info("hook output", "pkg", pkg.Name, "script", script, "output", out)
		}
		return res.Created, err
	}
}

// setOwners gives s the owners of the bin dir's paths in installed.db
// (paths a hook of another package must not overwrite) when installed.db
// changed since it last did: once per batch of hooks, rather than the
// list with every hook.
func (h *hookRunner) setOwners(ctx context.Context, s *lua.Session) error {
	gen, err := h.m.db.Generation(ctx)
	if err != nil {
		return err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.ownersFor == s && gen == h.ownersAt {
		return nil
	}
	owned, err := h.m.db.OwnersUnder(ctx, h.m.layout.BinDir)
	if err != nil {
		return err
	}
	owners := make(map[string]string, len(owned))
	for p, pkg := range owned {
		owners[p] = string(pkg)
	}
	s.SetOwners(owners)
	h.ownersFor, h.ownersAt = s, gen
	return nil
}

// prestart starts the sandbox child in the background, so that the first
// hook after the commit does not wait for it (about 4 ms). It changes
// nothing on the machine; a failure is left for the first hook to meet.
func (h *hookRunner) prestart(ctx context.Context) {
	go func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		if h.session == nil && !h.closed {
			h.session, _ = h.newSession(ctx)
		}
	}()
}

func (h *hookRunner) start(ctx context.Context) (*lua.Session, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.binDir {
		// Hooks place executables into the bin dir but cannot make
		// directories: make sure it exists, as it does on any real machine.
		if err := h.m.root.MkdirAll(strings.TrimPrefix(h.m.layout.BinDir, "/"), 0o755); err != nil {
			return nil, fmt.Errorf("bin dir: %w", err)
		}
		h.binDir = true
	}
	if h.session == nil {
		s, err := h.newSession(ctx)
		if err != nil {
			return nil, err
		}
		h.session = s
	}
	return h.session, nil
}

func (h *hookRunner) newSession(ctx context.Context) (*lua.Session, error) {
	self, err := selfCommand()
	if err != nil {
		return nil, err
	}
	r := &lua.Runner{
		Command: []string{self, hookChildCommand},
		Limits:  lua.Limits{Timeout: h.m.layout.Hooks.Timeout, MemoryBytes: h.m.layout.Hooks.MemoryBytes},
		Logger:  h.m.app.logger,
	}
	s, err := r.Start(context.WithoutCancel(ctx))
	if err != nil {
		return nil, fmt.Errorf("start the hook sandbox: %w", err)
	}
	return s, nil
}

func (h *hookRunner) Close() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closed = true
	if h.session == nil {
		return nil
	}
	return h.session.Close()
}

// selfCommand is how to run this very program again: the path it was
// started by (so that a test binary posing as packets still dispatches by
// its name), else the executable.
func selfCommand() (string, error) {
	if p, err := exec.LookPath(os.Args[0]); err == nil && strings.Contains(p, "/") {
		return p, nil
	}
	exe, err := os.Executable()
	if err != nil {
		return "", errors.New("cannot find the packets executable to run hooks")
	}
	return exe, nil
}
