package fetch

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/packets-dev/packets/packages"
)

// Names inside the cache directory.
const (
	blobExt = ".tar.zst" // <sha256>.tar.zst: complete and verified
	partExt = ".part"    // <sha256>.part: a download in progress, resumed by the next run
)

// Cache is the content-addressed directory of downloaded archives
// (/var/cache/packets by default): flat, one <sha256>.tar.zst per blob. A
// blob is visible under its final name only once verified and durable, so
// readers never see a partial one. Methods that remove files (Verify, Clean,
// and a Fetcher writing into the cache) must run under the packets lock.
type Cache struct {
	Dir    string       // host path of the cache directory
	Logger *slog.Logger // nil discards

	claims claims // what InProgress read of the claims file
}

// Path returns where blob d lives (whether or not it is there).
func (c *Cache) Path(d packages.Digest) string {
	return filepath.Join(c.Dir, d.String()+blobExt)
}

func (c *Cache) partPath(d packages.Digest) string {
	return filepath.Join(c.Dir, d.String()+partExt)
}

func (c *Cache) logger() *slog.Logger {
	if c.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return c.Logger
}

// Has reports whether blob d is present as a regular file of the given size.
// It only stats the file: use Verify or OpenVerified to check the hash.
func (c *Cache) Has(d packages.Digest, size int64) bool {
	st, err := os.Lstat(c.Path(d))
	return err == nil && st.Mode().IsRegular() && st.Size() == size
}

// Open opens blob d for reading. A missing blob is an error matching
// ErrNotFound. The blob was verified when it entered the cache; a caller
// that does not trust the disk since re-hashes it first (Verify,
// FetchAll's VerifyCached, which the installer uses) or uses OpenVerified.
func (c *Cache) Open(d packages.Digest) (*os.File, error) {
	f, err := os.Open(c.Path(d))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("blob %s is not in the cache: %w", d.Short(), ErrNotFound)
	}
	return f, err
}

// OpenVerified opens blob d, checks its size and SHA-256 against what the
// signed index promised, and returns it positioned at its start. A blob that
// does not match is removed and the mismatch returned: verify, then parse.
func (c *Cache) OpenVerified(d packages.Digest, size int64) (*os.File, error) {
	f, err := c.Open(d)
	if err != nil {
		return nil, err
	}
	err = c.check(f, d, size)
	if err == nil {
		_, err = f.Seek(0, io.SeekStart)
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// Verify re-hashes blob d. A blob whose bytes do not hash to its name is
// removed, logged and reported as a *packages.DigestMismatchError.
func (c *Cache) Verify(d packages.Digest) error {
	f, err := c.Open(d)
	if err != nil {
		return err
	}
	defer f.Close()
	return c.check(f, d, -1)
}

// check hashes f, which holds blob d; size < 0 skips the size check. A
// mismatching blob is removed.
func (c *Cache) check(f *os.File, d packages.Digest, size int64) error {
	path := c.Path(d)
	if size >= 0 {
		st, err := f.Stat()
		if err != nil {
			return err
		}
		if st.Size() != size {
			return c.discard(path, &packages.SizeMismatchError{What: "cached " + path, Want: size, Got: st.Size()})
		}
	}
	got, _, err := packages.SumReader(f)
	if err != nil {
		return fmt.Errorf("hash %s: %w", path, err)
	}
	if got != d {
		return c.discard(path, &packages.DigestMismatchError{What: "cached " + path, Want: d, Got: got})
	}
	return nil
}

// discard removes a corrupt blob so that the next fetch gets it again, and
// returns why.
func (c *Cache) discard(path string, why error) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return errors.Join(why, err)
	}
	c.logger().Warn("removed corrupt blob from the cache", "path", path, "err", why)
	return why
}

// List returns the digests of the blobs in the cache, sorted. Part files and
// files that are not named <sha256>.tar.zst are not listed.
func (c *Cache) List() ([]packages.Digest, error) {
	entries, err := os.ReadDir(c.Dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []packages.Digest
	for _, e := range entries {
		if d, ok := blobName(e.Name(), blobExt); ok && e.Type().IsRegular() {
			out = append(out, d)
		}
	}
	slices.SortFunc(out, func(a, b packages.Digest) int { return strings.Compare(a.String(), b.String()) })
	return out, nil
}

// Clean removes every blob not in keep and every leftover part file, and
// returns how many files it removed and how many bytes that freed. Files it
// does not recognise are left alone. It must run under the packets lock: a
// part file may belong to a running download otherwise.
func (c *Cache) Clean(keep map[packages.Digest]bool) (removed int, freed int64, err error) {
	entries, err := os.ReadDir(c.Dir)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, 0, nil
	}
	if err != nil {
		return 0, 0, err
	}
	var errs []error
	for _, e := range entries {
		name := e.Name()
		d, isBlob := blobName(name, blobExt)
		_, isPart := blobName(name, partExt)
		if !e.Type().IsRegular() || !(isBlob && !keep[d] || isPart) {
			continue
		}
		info, err := e.Info()
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if err := os.Remove(filepath.Join(c.Dir, name)); err != nil {
			errs = append(errs, err)
			continue
		}
		removed++
		freed += info.Size()
		c.logger().Debug("removed from the cache", "path", name, "bytes", info.Size())
	}
	return removed, freed, errors.Join(errs...)
}

// blobName parses "<sha256><ext>".
func blobName(name, ext string) (packages.Digest, bool) {
	hex, ok := strings.CutSuffix(name, ext)
	if !ok || !packages.IsHexDigest(hex) {
		return packages.Digest{}, false
	}
	d, err := packages.ParseDigest(hex)
	return d, err == nil
}
