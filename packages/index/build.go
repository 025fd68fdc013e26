package index

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"aead.dev/minisign"
	"golang.org/x/sys/unix"

	"github.com/packets-dev/packets/packages"
)

// DefaultExpiry is how long a release stays valid unless BuildOptions says
// otherwise. Clients refuse an expired release, so a mirror that stops
// updating (or an attacker replaying it) can hide newer releases for at
// most this long; the repository owner must re-run `repo index` before it
// elapses.
const DefaultExpiry = 30 * 24 * time.Hour

// DefaultRepoName names a repository whose owner chose no name.
const DefaultRepoName = "default"

// BuildOptions configures BuildRepo.
type BuildOptions struct {
	Dir     string              // the repository root: packages/*.tar.zst in, index and release out
	Key     minisign.PrivateKey // signs release.toml
	Repo    string              // the repository's name; "" keeps the previous release's, or DefaultRepoName
	Expires time.Duration       // how long the release is valid; 0 means DefaultExpiry
	Now     func() time.Time    // nil means time.Now
	Limits  *packages.Limits    // archive limits; nil means packages.DefaultLimits()
	Jobs    int                 // archives read in parallel; 0 means GOMAXPROCS
	Logger  *slog.Logger        // nil discards
}

// BuildStats says what one BuildRepo run did.
type BuildStats struct {
	Packages int // archives in the index
	Reused   int // of which rows were copied from the previous index (same SHA-256)
	Files    int // file paths of the new archives
}

// BuildRepo indexes opt.Dir/packages/*.tar.zst and publishes a new signed
// release: it reads the previous release (if any) for its version, validates
// every archive as the installer would (reusing the rows of archives whose
// SHA-256 is unchanged since the previous index), refuses two archives with
// the same family and serial, writes index-<version>.db, then
// release.toml.minisig and last release.toml, each atomically. It removes
// index files older than the previous release's (which stays for clients
// that fetched the previous release.toml a moment ago). Every run publishes
// version = previous + 1, even when nothing changed.
func BuildRepo(ctx context.Context, opt BuildOptions) (Release, error) {
	rel, _, err := BuildRepoStats(ctx, opt)
	return rel, err
}

// BuildRepoStats is BuildRepo that also says how much was reused.
func BuildRepoStats(ctx context.Context, opt BuildOptions) (Release, BuildStats, error) {
	log := discardIfNil(opt.Logger)
	if opt.Now == nil {
		opt.Now = time.Now
	}
	unlock, err := lockDir(opt.Dir)
	if err != nil {
		return Release{}, BuildStats{}, err
	}
	defer unlock()
	sweepTemps(opt.Dir)

	// 1. The previous release gives the version and the name.
	prev, err := readPreviousRelease(opt.Dir)
	if err != nil {
		return Release{}, BuildStats{}, err
	}
	rel, err := nextRelease(opt, prev)
	if err != nil {
		return Release{}, BuildStats{}, err
	}
	warnKeyChange(opt.Dir, opt.Key, log)

	// 2. Read every archive, reusing what the previous index knows.
	old := openPrevious(ctx, opt.Dir, prev, log)
	if old != nil {
		defer old.Close()
	}
	rows, stats, err := readArchives(ctx, opt, old, log)
	if err != nil {
		return Release{}, stats, err
	}
	if err := checkDuplicates(rows); err != nil {
		return Release{}, stats, err
	}

	// 3. The index, then the signature, then the release that names both:
	//    a client that sees the new release.toml finds everything it names.
	if rel.Index, err = writeIndex(ctx, opt.Dir, rel, rows, old); err != nil {
		return Release{}, stats, err
	}
	data := rel.Encode()
	if err := writeFileAtomic(filepath.Join(opt.Dir, SignatureFile), SignRelease(opt.Key, data, rel), 0o644); err != nil {
		return Release{}, stats, err
	}
	if err := writeFileAtomic(filepath.Join(opt.Dir, ReleaseFile), data, 0o644); err != nil {
		return Release{}, stats, err
	}
	pruneIndexes(opt.Dir, rel.Version, log)
	log.Info("published release", "repo", rel.Repo, "version", rel.Version, "packages", stats.Packages,
		"reused", stats.Reused, "index_size", rel.Index.Size, "expires", rel.Expires)
	return rel, stats, nil
}

// nextRelease returns the release that follows prev, without its index.
func nextRelease(opt BuildOptions, prev Release) (Release, error) {
	if opt.Expires < 0 {
		return Release{}, fmt.Errorf("expiry %s is negative", opt.Expires)
	}
	rel := Release{Repo: cmp.Or(opt.Repo, prev.Repo, DefaultRepoName), Version: prev.Version + 1}
	rel.Issued = opt.Now().UTC().Truncate(time.Second)
	rel.Expires = rel.Issued.Add(cmp.Or(opt.Expires, DefaultExpiry))
	return rel, ValidateRepoName(rel.Repo)
}

// readPreviousRelease reads Dir/release.toml; none is the zero Release.
func readPreviousRelease(dir string) (Release, error) {
	p := filepath.Join(dir, ReleaseFile)
	data, err := readSmallFile(p, MaxReleaseSize)
	if errors.Is(err, fs.ErrNotExist) {
		return Release{}, nil
	}
	if err != nil {
		return Release{}, err
	}
	r, err := ParseRelease(data)
	if err != nil {
		return Release{}, fmt.Errorf("previous release %s: %w: fix it (removing it restarts at version 1, which clients refuse as a rollback)", p, oneLine(err))
	}
	return r, nil
}

// warnKeyChange logs when the release is about to be signed by another key
// than the previous one: clients trusting only the old key will refuse it.
func warnKeyChange(dir string, key minisign.PrivateKey, log *slog.Logger) {
	var s minisign.Signature
	data, err := readSmallFile(filepath.Join(dir, SignatureFile), MaxSignatureSize)
	if err != nil || s.UnmarshalText(data) != nil || s.KeyID == key.ID() {
		return
	}
	log.Warn("signing key changed: clients must trust the new public key", "old_key", KeyID(s.KeyID), "new_key", KeyID(key.ID()))
}

// openPrevious opens the previous release's index for reuse, if it is
// there, matches the release and has the current format; otherwise nil
// (everything is read afresh).
func openPrevious(ctx context.Context, dir string, prev Release, log *slog.Logger) *Index {
	if prev.Version == 0 {
		return nil
	}
	p := filepath.Join(dir, prev.Index.File)
	f, err := os.Open(p)
	if err != nil {
		log.Warn("previous index not reused", "file", p, "err", err)
		return nil
	}
	d, n, err := packages.SumReader(f)
	f.Close()
	if err != nil || d != prev.Index.SHA256 || n != prev.Index.Size {
		log.Warn("previous index not reused: it does not match release.toml", "file", p)
		return nil
	}
	ix, err := open(ctx, p)
	if err != nil || ix.release.Version != prev.Version {
		log.Warn("previous index not reused", "file", p, "err", err)
		if ix != nil {
			ix.Close()
		}
		return nil
	}
	return ix
}

// checkDuplicates refuses two archives of one family with the same serial:
// a serial names exactly one build.
func checkDuplicates(rows []*pkgRow) error {
	type key struct {
		family packages.Family
		serial int64
	}
	seen := map[key]*pkgRow{}
	var errs []error
	for _, r := range rows {
		k := key{r.Family, r.Serial}
		o, dup := seen[k]
		switch {
		case !dup:
			seen[k] = r
		case o.Digest == r.Digest:
			errs = append(errs, fmt.Errorf("%s and %s are the same archive (%s): remove one", o.Filename, r.Filename, r.Ref()))
		default:
			errs = append(errs, fmt.Errorf("%s (%s) and %s (%s) are different builds with family %s and serial %d: give the newer build a higher serial",
				o.Filename, o.Ref(), r.Filename, r.Ref(), r.Family, r.Serial))
		}
	}
	return errors.Join(errs...)
}

// writeIndex writes the index database of rel and returns its reference.
func writeIndex(ctx context.Context, dir string, rel Release, rows []*pkgRow, old *Index) (IndexRef, error) {
	ref := IndexRef{File: IndexFileName(rel.Version)}
	dest := filepath.Join(dir, ref.File)
	f, err := createTemp(dest)
	if err != nil {
		return ref, err
	}
	tmp := f.Name()
	f.Close()
	defer os.Remove(tmp) // after the rename, a no-op
	w, err := createIndexDB(ctx, tmp)
	if err != nil {
		return ref, err
	}
	var oldFiles *sql.Stmt // prepared once: reused rows copy their files from it
	if old != nil {
		if oldFiles, err = old.conn.PrepareContext(ctx, relFilesQuery); err != nil {
			w.abort()
			return ref, fmt.Errorf("previous index: %w", err)
		}
		defer oldFiles.Close()
	}
	for i, r := range rows {
		if r.oldID != 0 {
			if r.files, err = scanRelFiles(oldFiles.QueryContext(ctx, r.oldID)); err != nil {
				w.abort()
				return ref, fmt.Errorf("copy %s from the previous index: %w", r.Filename, err)
			}
		}
		if err := w.add(ctx, int64(i+1), r); err != nil {
			w.abort()
			return ref, err
		}
		r.files = nil // written: let it go
	}
	if err := w.finish(ctx, rel); err != nil {
		return ref, fmt.Errorf("write index %s: %w", dest, err)
	}
	if ref.SHA256, ref.Size, err = syncAndHash(tmp); err != nil {
		return ref, err
	}
	if err := os.Rename(tmp, dest); err != nil {
		return ref, err
	}
	return ref, packages.SyncPath(dir)
}

// syncAndHash makes a finished file durable and returns its digest and size.
func syncAndHash(p string) (packages.Digest, int64, error) {
	f, err := os.Open(p)
	if err != nil {
		return packages.Digest{}, 0, err
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return packages.Digest{}, 0, fmt.Errorf("sync %s: %w", p, err)
	}
	return packages.SumReader(f)
}

// pruneIndexes removes index-<n>.db for n older than the previous release.
func pruneIndexes(dir string, version int64, log *slog.Logger) {
	matches, _ := filepath.Glob(filepath.Join(dir, "index-*.db")) // the pattern is well formed
	for _, m := range matches {
		s := strings.TrimSuffix(strings.TrimPrefix(filepath.Base(m), "index-"), ".db")
		if n, err := strconv.ParseInt(s, 10, 64); err == nil && n < version-1 {
			if err := os.Remove(m); err != nil {
				log.Warn("remove old index", "file", m, "err", err)
			}
		}
	}
}

// sweepTemps removes what a killed run left behind; the caller holds the
// directory lock.
func sweepTemps(dir string) {
	for _, pattern := range []string{".index-*.db" + tmpInfix + "*", "." + ReleaseFile + tmpInfix + "*", "." + SignatureFile + tmpInfix + "*"} {
		matches, _ := filepath.Glob(filepath.Join(dir, pattern)) // the patterns are well formed
		for _, m := range matches {
			os.Remove(m)
		}
	}
}

// lockDir takes an exclusive flock on the repository directory itself, so
// that two `repo index` runs cannot publish the same version.
func lockDir(dir string) (unlock func(), err error) {
	d, err := os.Open(dir)
	if err != nil {
		return nil, fmt.Errorf("repository %w", err)
	}
	if err := unix.Flock(int(d.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		d.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("repository %s: another 'packets repo index' is running on it", dir)
		}
		return nil, fmt.Errorf("lock repository %s: %w", dir, err)
	}
	return func() { d.Close() }, nil
}

func discardIfNil(l *slog.Logger) *slog.Logger {
	if l == nil {
		return slog.New(slog.DiscardHandler)
	}
	return l
}
