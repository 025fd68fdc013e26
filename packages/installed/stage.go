package installed

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"path"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"github.com/packets-dev/packets/packages"
)

// ConflictError says that a package would overwrite a path it does not own:
// one another package owns, or one that exists but nobody owns (made by
// hand). It is raised before the decision point, so nothing has changed.
type ConflictError struct {
	Package packages.Name // the package being installed
	Path    string        // machine path
	Owner   packages.Name // "" when the path is unowned
	Reason  string        // set for other conflicts, e.g. a dir that becomes a file
}

// Error names the path, not the package: Stage wraps it in "stage NAME@VERSION".
func (e *ConflictError) Error() string {
	switch {
	case e.Reason != "":
		return fmt.Sprintf("%s: %s", e.Path, e.Reason)
	case e.Owner != "":
		return fmt.Sprintf("%s is owned by %s", e.Path, e.Owner)
	}
	return fmt.Sprintf("%s exists and no package owns it; move it away first", e.Path)
}

// Stage extracts every new build into temporaries beside their final
// paths and makes them all durable with one syncfs. It refuses a path the
// package does not own (*ConflictError); what it staged stays until Abort
// (or Recover) sweeps it.
//
// A batch of installs only (a cold apply) has nothing to decide at the
// commit that extraction does not already know, and no hook runs before
// it: its receipts and rows are written while the archives are extracted,
// in an SQL transaction that Commit completes and commits as the decision
// point, so that the database work is done beside the extraction instead
// of after it. That transaction holds installed.db's write lock from the
// start of the stage, downloads included: readers never wait for it (WAL;
// Open takes the lock only to migrate), and every writer holds the
// packets lock first.
func (tx *Tx) Stage(ctx context.Context) (err error) {
	var staged func(*change) error
	if tx.installsOnly() {
		if tx.rec, err = tx.db.beginRecord(ctx); err != nil {
			return err
		}
		items := make(chan recordItem, len(tx.changes))
		recorded := make(chan error, 1)
		go func() { recorded <- tx.rec.take(items) }()
		defer func() {
			close(items)
			if err = errors.Join(err, <-recorded); err != nil {
				tx.dropRecord()
			}
		}()
		staged = func(c *change) error {
			rows, err := stagedRows(&tx.l, c)
			if err == nil {
				items <- recordItem{pkg: c.New, rows: rows}
			}
			return err
		}
	}
	if err := tx.db.stageAll(ctx, &tx.l, tx.changes, true, staged); err != nil {
		return err
	}
	return tx.db.crash("staged")
}

// installsOnly reports whether every change of tx installs a package
// that was not installed.
func (tx *Tx) installsOnly() bool {
	for _, c := range tx.changes {
		if c.Kind != Install {
			return false
		}
	}
	return len(tx.changes) > 0
}

// dropRecord rolls back the rows Stage wrote, if any: after an error, the
// transaction goes on (Abort, or Commit writing them afresh) without them.
func (tx *Tx) dropRecord() {
	if tx.rec != nil {
		tx.rec.rollback()
		tx.rec = nil
	}
}

// stageAll extracts the new builds of cs, GOMAXPROCS at a time (extraction
// is CPU-bound: zstd and SHA-256; every package has its own dir), then
// flushes them all with one syncfs (DESIGN §8), not one per file. staged,
// when not nil, is called for each change once it is staged.
func (db *DB) stageAll(ctx context.Context, l *Layout, cs []*change, check bool, staged func(*change) error) error {
	var todo []*change
	for _, c := range cs {
		if c.New != nil {
			todo = append(todo, c)
		}
	}
	// The data dir exists before the workers start, so that no two
	// extractions race to create it.
	if err := l.Root.MkdirAll(rel(l.DataDir), 0o755); err != nil {
		return fmt.Errorf("stage: %w", err)
	}
	// The first failure stops the extractions under way and those waiting
	// for their archive: the transaction is aborted anyway.
	sctx, stop := context.WithCancel(ctx)
	defer stop()
	var (
		mu    sync.Mutex
		first error
	)
	parallel := min(runtime.GOMAXPROCS(0), len(todo)) > 1 // as many as forEach runs
	order := &arrivalOrder{left: slices.Clone(todo)}
	err := forEach(ctx, len(todo), func(int) error {
		c := order.next()
		err := db.stage(sctx, l, c, check, parallel)
		if err == nil && staged != nil {
			err = staged(c)
		}
		if err != nil {
			mu.Lock()
			defer mu.Unlock()
			if first != nil && sctx.Err() != nil && ctx.Err() == nil {
				return nil // stopped for the failure already reported
			}
			first = fmt.Errorf("stage %s: %w", c.New.Ref(), err)
			stop()
			return first
		}
		return db.crash("stage-one")
	})
	if err != nil {
		return err
	}
	if err := packages.SyncFS(l.Root); err != nil {
		return fmt.Errorf("stage: %w", err)
	}
	return nil
}

// arrivalOrder hands out the changes to stage one at a time: the first,
// in order, whose archive has arrived (Change.Ready), else the first.
type arrivalOrder struct {
	mu   sync.Mutex
	left []*change
}

func (o *arrivalOrder) next() *change {
	o.mu.Lock()
	defer o.mu.Unlock()
	k := max(0, slices.IndexFunc(o.left, func(c *change) bool { return c.Ready == nil || c.Ready() }))
	c := o.left[k]
	o.left = slices.Delete(o.left, k, k+1)
	return c
}

// stage extracts c's archive to temps tagged with c's current tag, reading
// it once: Extract validates every entry as it goes and returns what
// Inspect would. check is false when rolling forward, where the finals are
// already half new; parallel says that other archives are extracted at the
// same time.
func (db *DB) stage(ctx context.Context, l *Layout, c *change, check, parallel bool) error {
	if c.Wait != nil {
		source, err := c.Wait(ctx)
		if err != nil {
			return err
		}
		c.New.Source = source
	}
	rc, err := c.Open()
	if err != nil {
		return err
	}
	staged, err := packages.Extract(rc, l.Root, packages.ExtractOptions{
		Limits:    l.limits(),
		Dest:      rel(path.Join(c.New.DataDir, packages.DataDir)),
		Tag:       c.row.tag,
		TrustSums: true, // Open's bytes matched the signed index
		Parallel:  parallel,
	})
	rc.Close()
	if err != nil {
		return err
	}
	f := newFinals(c.New, staged.Contents)
	err = fillNew(c.New, staged.Contents)
	if err == nil && check {
		err = db.conflicts(ctx, l, c, staged, f)
	}
	if err != nil {
		return errors.Join(err, staged.Discard(l.Root))
	}
	c.contents, c.staged, c.finals = staged.Contents, staged, f
	return nil
}

// fillNew checks that the archive is the build the change names
// (*packages.BuildMismatchError) and completes the receipt from it: the
// hooks are known only from the archive.
func fillNew(n *Package, contents *packages.Contents) error {
	m := contents.Manifest
	want := &packages.Manifest{Name: n.Name, Version: n.Version, Family: n.Family, Serial: n.Serial}
	if !m.SameBuild(want) {
		return &packages.BuildMismatchError{Digest: n.Digest, Want: want, Got: m}
	}
	n.Description, n.Dependencies = m.Description, m.Dependencies
	n.InstallHook, n.RemoveHook = string(contents.InstallHook), string(contents.RemoveHook)
	n.InstalledSize = contents.InstalledSize
	return nil
}

// finals are the machine paths a build installs: its dir, its data dir
// and every entry, each with the index of its entry in the contents (-1
// for the two dirs), and in path order (sorted). Stage makes them once for
// the conflict check and the rows (change.final).
type finals struct {
	index   map[string]int
	sorted  []string
	entries []packages.Entry
}

func newFinals(n *Package, contents *packages.Contents) *finals {
	m := make(map[string]int, len(contents.Entries)+2)
	m[n.DataDir] = -1
	m[path.Join(n.DataDir, packages.DataDir)] = -1
	for i, e := range contents.Entries {
		m[path.Join(n.DataDir, e.Path)] = i
	}
	return &finals{index: m, sorted: slices.Sorted(maps.Keys(m)), entries: contents.Entries}
}

// has reports whether the build installs machine path p.
func (f *finals) has(p string) bool {
	_, ok := f.index[p]
	return ok
}

// isDir reports whether the build makes machine path p a directory.
func (f *finals) isDir(p string) bool {
	i, ok := f.index[p]
	return ok && (i < 0 || f.entries[i].Type == packages.TypeDir)
}

// conflicts refuses a final path that is owned by a package other than
// the one being replaced, or that exists unowned (a directory may be
// shared), or whose type would change between a directory and a file, or
// where a directory now stands in the way of a file: the renames after
// the decision point must not fail. It runs after extraction, which wrote
// only temps and directories; a path in a directory the extraction
// created cannot have been there before.
func (db *DB) conflicts(ctx context.Context, l *Layout, c *change, staged *packages.Staged, all *finals) error {
	owned, err := db.ownedUnder(ctx, c.New.DataDir)
	if err != nil {
		return err
	}
	created := make(map[string]bool, len(staged.NewDirs))
	for _, d := range staged.NewDirs {
		created["/"+d] = true
	}
	dc := dirCache{root: l.Root}
	defer dc.close()
	for _, p := range all.sorted {
		isDir := all.isDir(p)
		o, ok := owned[p]
		switch {
		case ok && o.pkg != c.oldName():
			return &ConflictError{Package: c.New.Name, Path: p, Owner: o.pkg}
		case ok && (o.typ == TypeDir) != isDir:
			return &ConflictError{Package: c.New.Name, Path: p, Reason: "changes between a directory and a file; remove the package first"}
		case isDir, created[path.Dir(p)]:
			continue // merged into, or new
		}
		var st unix.Stat_t
		err := dc.lstat(rel(p), &st)
		switch {
		case errors.Is(err, fs.ErrNotExist):
		case err != nil:
			return err
		case !ok:
			return &ConflictError{Package: c.New.Name, Path: p}
		case st.Mode&unix.S_IFMT == unix.S_IFDIR:
			return &ConflictError{Package: c.New.Name, Path: p, Reason: "a directory stands where the package has a file"}
		}
	}
	return nil
}

type ownedPath struct {
	pkg packages.Name
	typ FileType
}

// ownedUnder returns the owned paths at or below dir, with one range scan
// of the primary key, through a statement prepared once (a cold apply
// asks once a package).
func (db *DB) ownedUnder(ctx context.Context, dir string) (map[string]ownedPath, error) {
	st, err := db.prepared(ctx, `SELECT path, package, type FROM files
		WHERE path = ? OR (path >= ? AND path < ?)`)
	if err != nil {
		return nil, fmt.Errorf("owners under %s: %w", dir, err)
	}
	rows, err := st.QueryContext(ctx, dir, dir+"/", dir+"0") // '0' follows '/'
	if err != nil {
		return nil, fmt.Errorf("owners under %s: %w", dir, err)
	}
	defer rows.Close()
	m := map[string]ownedPath{}
	for rows.Next() {
		var (
			p string
			o ownedPath
		)
		if err := rows.Scan(&p, &o.pkg, &o.typ); err != nil {
			return nil, err
		}
		m[p] = o
	}
	return m, rows.Err()
}

// forEach runs fn(0) ... fn(n-1), GOMAXPROCS at a time; once one fails or
// ctx ends, no further one starts. It returns the errors joined.
func forEach(ctx context.Context, n int, fn func(i int) error) error {
	var (
		errs   = make([]error, n)
		failed atomic.Bool
		wg     sync.WaitGroup
		next   = make(chan int)
	)
	for range min(runtime.GOMAXPROCS(0), n) {
		wg.Go(func() {
			for i := range next {
				if errs[i] = fn(i); errs[i] != nil {
					failed.Store(true)
				}
			}
		})
	}
	for i := range n {
		if failed.Load() || ctx.Err() != nil {
			break
		}
		next <- i
	}
	close(next)
	wg.Wait()
	return errors.Join(append(errs, ctx.Err())...)
}
