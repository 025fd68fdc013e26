package index

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"slices"
	"strings"

	"golang.org/x/sync/errgroup"

	"github.com/packets-dev/packets/packages"
)

// ArchiveSuffix ends the name of every archive that BuildRepo indexes.
const ArchiveSuffix = ".tar.zst"

// listArchives returns the base names of Dir/packages/*.tar.zst, sorted.
func listArchives(dir string) ([]string, error) {
	pdir := filepath.Join(dir, PackagesDir)
	ents, err := os.ReadDir(pdir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s does not exist: put the package archives there", pdir)
	}
	if err != nil {
		return nil, err
	}
	var names []string
	var errs []error
	for _, e := range ents {
		name := e.Name()
		if !strings.HasSuffix(name, ArchiveSuffix) || strings.HasPrefix(name, ".") {
			continue
		}
		if !isSafeFileName(name) {
			errs = append(errs, fmt.Errorf("%s/%s: rename it to letters, digits and ._+- only (mirrors serve it by URL)", PackagesDir, name))
			continue
		}
		names = append(names, name)
	}
	slices.Sort(names)
	return names, errors.Join(errs...)
}

// reuseTable finds rows of the previous index by archive SHA-256.
type reuseTable struct {
	byDigest map[packages.Digest]packages.Available // the previous index's packages
	ids      map[packages.Digest]int64              // and their row ids
}

// newReuseTable reads every package row of the previous index with one
// query (one query per archive was slower than reading the archives again).
func newReuseTable(ctx context.Context, old *Index) (*reuseTable, error) {
	t := &reuseTable{byDigest: map[packages.Digest]packages.Available{}, ids: map[packages.Digest]int64{}}
	if old == nil {
		return t, nil
	}
	rows, err := old.conn.QueryContext(ctx, `SELECT `+pkgCols+` FROM packages p`)
	if err != nil {
		return nil, fmt.Errorf("previous index: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		id, a, err := scanPackage(rows, "")
		if err != nil {
			return nil, fmt.Errorf("previous index: %w", err)
		}
		t.byDigest[a.Digest], t.ids[a.Digest] = a, id
	}
	return t, rows.Err()
}

// lookup returns the previous index's row for an archive with digest d, or
// nil.
func (t *reuseTable) lookup(d packages.Digest) *pkgRow {
	a, ok := t.byDigest[d]
	if !ok {
		return nil
	}
	return &pkgRow{Available: a, oldID: t.ids[d]}
}

// readArchives reads every archive, opt.Jobs at a time, and returns their
// rows in file name order. A broken archive does not stop the others: all
// failures are reported together, one line each.
func readArchives(ctx context.Context, opt BuildOptions, old *Index, log *slog.Logger) ([]*pkgRow, BuildStats, error) {
	var stats BuildStats
	names, err := listArchives(opt.Dir)
	if err != nil {
		return nil, stats, err
	}
	reuse, err := newReuseTable(ctx, old)
	if err != nil {
		return nil, stats, err
	}
	lim := packages.DefaultLimits()
	if opt.Limits != nil {
		lim = *opt.Limits
	}
	rows := make([]*pkgRow, len(names))
	errs := make([]error, len(names))
	g, gctx := errgroup.WithContext(ctx)
	jobs := opt.Jobs
	if jobs <= 0 {
		jobs = runtime.GOMAXPROCS(0)
	}
	g.SetLimit(jobs)
	for i, name := range names {
		g.Go(func() error {
			if err := gctx.Err(); err != nil {
				return err
			}
			rows[i], errs[i] = readArchive(gctx, filepath.Join(opt.Dir, PackagesDir, name), name, reuse, lim)
			if errs[i] != nil {
				errs[i] = fmt.Errorf("%s/%s: %w", PackagesDir, name, errs[i])
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, stats, err
	}
	if err := errors.Join(errs...); err != nil {
		return nil, stats, err
	}
	for _, r := range rows {
		stats.Packages++
		if r.oldID != 0 {
			stats.Reused++
		}
		stats.Files += len(r.files)
		log.Debug("indexed", "pkg", r.Name, "version", r.Version, "file", r.Filename, "reused", r.oldID != 0)
	}
	return rows, stats, nil
}

// readArchive hashes one archive and, unless the previous index has a row
// for that hash, validates it fully with packages.Inspect.
func readArchive(ctx context.Context, p, name string, reuse *reuseTable, lim packages.Limits) (*pkgRow, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	d, size, err := packages.SumReader(f)
	if err != nil {
		return nil, err
	}
	filename := path.Join(PackagesDir, name)
	if r := reuse.lookup(d); r != nil {
		r.Filename = filename // the same archive may have been renamed
		return r, nil
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	// Hash again while inspecting: what is indexed must be what was hashed,
	// even if someone rewrites the file meanwhile.
	h := sha256.New()
	tee := io.TeeReader(f, h)
	c, err := packages.Inspect(tee, lim)
	if err != nil {
		return nil, err
	}
	if _, err := io.Copy(io.Discard, tee); err != nil {
		return nil, err
	}
	if packages.Digest(h.Sum(nil)) != d {
		return nil, errors.New("the file changed while it was being indexed: run again")
	}
	return rowFromContents(c, filename, d, size), nil
}

// rowFromContents makes the index row of a validated archive.
func rowFromContents(c *packages.Contents, filename string, d packages.Digest, size int64) *pkgRow {
	r := &pkgRow{Available: packages.Available{
		Manifest: *c.Manifest, Filename: filename, Digest: d, Size: size, InstalledSize: c.InstalledSize,
	}}
	// The hooks the archive carries, whatever the manifest claims.
	r.Hooks = packages.Hooks{}
	if c.InstallHook != nil {
		r.Hooks.Install = packages.InstallHook
	}
	if c.RemoveHook != nil {
		r.Hooks.Remove = packages.RemoveHook
	}
	for _, e := range c.Entries {
		rel, ok := strings.CutPrefix(e.Path, packages.DataDir+"/")
		if ok && e.Type != packages.TypeDir {
			r.files = append(r.files, rel)
		}
	}
	slices.Sort(r.files)
	return r
}
