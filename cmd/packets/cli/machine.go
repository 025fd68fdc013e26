package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/packets-dev/packets/cmd/packets/config"
	"github.com/packets-dev/packets/desired"
	"github.com/packets-dev/packets/packages"
	"github.com/packets-dev/packets/packages/index"
	"github.com/packets-dev/packets/packages/installed"
	"github.com/packets-dev/packets/reconcile"
)

// machine is one opened machine: its layout, its installed.db, and, for
// writing commands, the lock. Open it with openMachine; close it with the app.
type machine struct {
	app    *App
	layout config.Layout
	db     *installed.DB
	root   *os.Root
	lock   *lockFile
	hooks  *hookRunner // started on the first hook

	closers []io.Closer // what openMachine opened, closed last first by close
}

// close releases what the machine holds: the hook child, the database, the
// lock. A command's machine is closed with the app; watch closes each run's.
func (m *machine) close() {
	for i := len(m.closers) - 1; i >= 0; i-- {
		m.closers[i].Close()
	}
	m.closers = nil
}

// Close implements io.Closer, so the app can close a command's machine.
func (m *machine) Close() error {
	m.close()
	return nil
}

// machineOptions says how a command uses the machine.
type machineOptions struct {
	write       bool          // take the lock and recover an unfinished transaction first
	lockTimeout time.Duration // how long to wait for the lock
	// allowMissing lets a reading command run on a machine with no
	// installed.db: it reads as nothing installed, and nothing is created.
	allowMissing bool
}

// openMachine opens installed.db under --root. A writing command takes the
// writers' lock first and then recovers whatever an interrupted command left
// (DESIGN.md §8): every writing command starts from a whole machine.
func (a *App) openMachine(ctx context.Context, opt machineOptions) (*machine, error) {
	l, err := a.Layout()
	if err != nil {
		return nil, err
	}
	m := &machine{app: a, layout: l}
	a.closers = append(a.closers, m)
	if opt.write {
		if err := os.MkdirAll(l.Root, 0o755); err != nil {
			return nil, err
		}
		lk, err := acquireLock(ctx, l.LockFile(), opt.lockTimeout, func(pid int) {
			who := "another packets process"
			if pid > 0 {
				who = fmt.Sprintf("packets (pid %d)", pid)
			}
			fmt.Fprintf(a.stderr, "waiting for %s to release %s...\n", who, l.LockFile())
		})
		if err != nil {
			return nil, err
		}
		m.lock = lk
		m.closers = append(m.closers, lk)
	} else if _, err := os.Stat(l.InstalledDB()); errors.Is(err, fs.ErrNotExist) {
		// Reading commands never create a database under a root that has none.
		if opt.allowMissing {
			return m, nil
		}
		return nil, &noDatabaseError{path: l.InstalledDB()}
	}
	db, err := installed.Open(ctx, l.InstalledDB(), installed.Options{Logger: a.logger})
	if err != nil {
		return nil, err
	}
	m.db = db
	m.closers = append(m.closers, db)
	root, err := os.OpenRoot(l.Root)
	if err != nil {
		return nil, err
	}
	m.root = root
	m.closers = append(m.closers, root)
	if opt.write {
		if err := m.recover(ctx); err != nil {
			return nil, err
		}
	}
	return m, nil
}

type noDatabaseError struct{ path string }

func (e *noDatabaseError) Error() string {
	return fmt.Sprintf("no packages installed yet (%s does not exist)", e.path)
}

func (m *machine) installedLayout() installed.Layout {
	return installed.Layout{Root: m.root, DataDir: m.layout.DataDir, BinDir: m.layout.BinDir}
}

// recover finishes or rolls back an interrupted transaction.
func (m *machine) recover(ctx context.Context) error {
	cache := m.cache()
	hooks := m.hookRunner()
	// Recovery re-reads archives from the cache: hash them again first, since
	// the cache may have been damaged since they were fetched.
	rep, err := m.db.Recover(ctx, m.installedLayout(), func(d packages.Digest) (io.ReadCloser, error) {
		if err := cache.Verify(d); err != nil {
			return nil, err
		}
		return cache.Open(d)
	}, hooks.RunHook)
	if err != nil {
		return fmt.Errorf("recover the interrupted transaction: %w", err)
	}
	for _, r := range rep.RolledBack {
		fmt.Fprintf(m.app.stderr, "recovered: rolled back the interrupted change of %s\n", r)
	}
	for _, r := range rep.RolledForward {
		fmt.Fprintf(m.app.stderr, "recovered: completed the interrupted change of %s\n", r)
	}
	for _, n := range reconcile.KeptNotes(rep.Kept) {
		fmt.Fprintf(m.app.stderr, "recovered: %s\n", n)
	}
	if rep.HookErrors != nil {
		fmt.Fprintf(m.app.stderr, "recovered, but a hook failed: %v\n", rep.HookErrors)
	}
	return nil
}

// loadState reads the desired state: -f FILE|DIR when given, else the
// machine's state.hcl and state.d/.
func (m *machine) loadState(file string) (desired.State, error) {
	if file != "" {
		return desired.Load(file)
	}
	s, err := m.loadMachineState()
	if err != nil {
		return s, err
	}
	// Under --root, plans name state files as the machine sees them
	// (/etc/packets/state.hcl:4), not by their host path.
	if m.layout.Root != "/" {
		for name, w := range s.Packages {
			if rel, ok := strings.CutPrefix(w.Pos.File, m.layout.Root); ok && strings.HasPrefix(rel, "/") {
				w.Pos.File = rel
				s.Packages[name] = w
			}
		}
	}
	return s, nil
}

// have reads installed.db into the planner's view.
func (m *machine) have(ctx context.Context) (reconcile.Have, error) {
	if m.db == nil {
		return reconcile.Have{Packages: map[packages.Name]*reconcile.Installed{}}, nil
	}
	snap, err := m.db.Brief(ctx) // what HaveFromSnapshot reads
	if err != nil {
		return reconcile.Have{}, err
	}
	return reconcile.HaveFromSnapshot(snap), nil
}

// loadMachineState reads the machine's state files, through the state memo
// beside installed.db when this build can name itself (desired.Memo). Only
// a command that holds the packets lock rewrites the memo.
func (m *machine) loadMachineState() (desired.State, error) {
	main, dropins := m.layout.Host(m.layout.StateFile), m.layout.Host(m.layout.StateDir)
	id, ok := m.app.programID()
	if !ok {
		return desired.LoadMachine(main, dropins)
	}
	memo := desired.Memo{Path: m.layout.StateMemo(), Program: id, Write: m.lock != nil}
	s, wrote, memoErr, err := desired.LoadMachineMemo(main, dropins, memo)
	if memoErr != nil {
		m.app.logger.Debug("state memo not written", "err", memoErr)
	} else if wrote {
		m.app.logger.Debug("state memo written", "path", memo.Path)
	}
	return s, err
}

// programID names the running build of packets for the state memo: its
// build information (module versions, VCS revision, Go version) and the
// device, inode, size and modification time of the executable it runs
// from, so that a rebuild or an upgrade is another program. The file is
// /proc/self/exe, which stays the running one when an upgrade renames
// another over its path (os.Executable would name the new one). ok is
// false when it cannot be found: then no memo is used.
func (a *App) programID() (id string, ok bool) {
	fi, err := os.Stat("/proc/self/exe")
	if err != nil {
		return "", false
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return "", false
	}
	build := "(no build information)"
	if bi, ok := debug.ReadBuildInfo(); ok {
		build = bi.String()
	}
	return fmt.Sprintf("%d:%d %d %d\n%s", st.Dev, st.Ino, fi.Size(), fi.ModTime().UnixNano(), build), true
}

// installedCount returns how many packages are installed.
func (m *machine) installedCount(ctx context.Context) (int, error) {
	if m.db == nil {
		return 0, nil
	}
	return m.db.Count(ctx)
}

// catalog loads every synced repository's index into memory, in priority
// order. A repository never synced is skipped with a warning; none synced at
// all is an error only when something must be resolved.
func (a *App) catalog(ctx context.Context) (*reconcile.MemCatalog, []string, error) {
	s, err := a.openIndexes()
	if err != nil {
		return nil, nil, err
	}
	defer s.close()
	var builds []packages.Available
	err = s.each(func(repo string, ix *index.Index) error {
		all, err := ix.All(ctx)
		for j := range all {
			all[j].Repo = repo
		}
		builds = append(builds, all...)
		return err
	})
	if err != nil {
		return nil, nil, err
	}
	return reconcile.NewMemCatalog(s.priority, builds), s.warnings, nil
}

// catalogFor loads what a plan for want and have can need of the synced
// indexes (reconcile.LoadCatalog): of a large index, a small part.
func (a *App) catalogFor(ctx context.Context, want desired.State, have reconcile.Have) (*reconcile.MemCatalog, []string, error) {
	s, err := a.openIndexes()
	if err != nil {
		return nil, nil, err
	}
	defer s.close()
	l := a.catalogLoader(ctx, s)
	if err := l.AddHave(ctx, have); err != nil {
		return nil, nil, err
	}
	if err := l.AddState(ctx, want); err != nil {
		return nil, nil, err
	}
	return l.Catalog(), s.warnings, nil
}

// catalogLoader reads the catalogue from s's indexes a part at a time.
func (a *App) catalogLoader(ctx context.Context, s *syncedIndexes) *reconcile.CatalogLoader {
	allNames := func() []packages.Name {
		// Only for "did you mean", when s may be closed: opened afresh.
		names, err := a.allNames(context.WithoutCancel(ctx))
		if err != nil {
			return nil
		}
		return names
	}
	return reconcile.NewCatalogLoader(s.priority, s, allNames)
}

// allNames lists every name the synced indexes offer, sorted, each once.
func (a *App) allNames(ctx context.Context) ([]packages.Name, error) {
	s, err := a.openIndexes()
	if err != nil {
		return nil, err
	}
	defer s.close()
	var out []packages.Name
	err = s.each(func(_ string, ix *index.Index) error {
		names, err := ix.Names(ctx)
		out = append(out, names...)
		return err
	})
	if err != nil {
		return nil, err
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// each calls fn with every index and its repository, in priority order,
// until one fails; the error names the repository.
func (s *syncedIndexes) each(fn func(repo string, ix *index.Index) error) error {
	for i, ix := range s.indexes {
		if err := fn(s.repos[i], ix); err != nil {
			return fmt.Errorf("repository %s: %w", repoName(s.repos[i]), err)
		}
	}
	return nil
}

// Named implements reconcile.Reacher over every synced index.
func (s *syncedIndexes) Named(ctx context.Context, names []packages.Name) ([]packages.Available, error) {
	var out []packages.Available
	err := s.each(func(repo string, ix *index.Index) error {
		got, err := ix.Named(ctx, names)
		for j := range got {
			got[j].Repo = repo
		}
		out = append(out, got...)
		return err
	})
	return out, err
}

// preload reads every index whole when n names would pick out a good part
// of it (index.Index.Preload).
func (s *syncedIndexes) preload(ctx context.Context, n int) error {
	return s.each(func(_ string, ix *index.Index) error { return ix.Preload(ctx, n) })
}

// whole returns every build of every index, in priority order, when each
// index has been read whole; ok is false otherwise.
func (s *syncedIndexes) whole() (builds []packages.Available, ok bool) {
	if len(s.indexes) == 0 {
		return nil, false
	}
	for i, ix := range s.indexes {
		all, ok := ix.Whole()
		if !ok {
			return nil, false
		}
		for _, a := range all {
			a.Repo = s.repos[i]
			builds = append(builds, a)
		}
	}
	return builds, true
}

// FamilyNames implements reconcile.Reacher over every synced index.
func (s *syncedIndexes) FamilyNames(ctx context.Context, families []packages.Family) ([]packages.Name, error) {
	var out []packages.Name
	err := s.each(func(_ string, ix *index.Index) error {
		got, err := ix.FamilyNames(ctx, families)
		out = append(out, got...)
		return err
	})
	return out, err
}

// syncedIndexes are the open indexes of the synced repositories.
type syncedIndexes struct {
	indexes  []*index.Index
	repos    []string // indexes[i] is repository repos[i]'s
	priority []string // every configured repository, in priority order
	warnings []string // one per repository never synced
}

// openIndexes opens the index of every synced repository, in priority
// order; one never synced is skipped with a warning.
func (a *App) openIndexes() (*syncedIndexes, error) {
	l, err := a.Layout()
	if err != nil {
		return nil, err
	}
	s := &syncedIndexes{priority: l.RepoNames()}
	for _, repo := range s.priority {
		ix, err := index.OpenSynced(l.Host(l.LibDir), repo)
		if errors.Is(err, index.ErrNotSynced) {
			s.warnings = append(s.warnings, fmt.Sprintf("repository %s has not been synced: run packets sync", repoName(repo)))
			continue
		}
		if err != nil {
			s.close()
			return nil, err
		}
		s.indexes, s.repos = append(s.indexes, ix), append(s.repos, repo)
	}
	return s, nil
}

func (s *syncedIndexes) close() {
	for _, ix := range s.indexes {
		ix.Close()
	}
}

// stateFileForEdit is the file install edits: the main state file.
func (m *machine) stateFileForEdit() string { return m.layout.Host(m.layout.StateFile) }

func ensureDir(path string) error { return os.MkdirAll(filepath.Dir(path), 0o755) }
