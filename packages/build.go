package packages

import (
	"archive/tar"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/klauspost/compress/zstd"
)

// buildLevel is the zstd level of built archives. Archives are built once
// and fetched and unpacked many times, so size matters more than build
// time: on Go's own tree SpeedBetterCompression made binaries 17% and text
// 8% smaller than SpeedDefault, for about 2.3× the compression time, and
// decompressed as fast; SpeedBestCompression saved another 2 points for 5×
// more time.
const buildLevel = zstd.SpeedBetterCompression

// epoch is the modification time of every entry: archives carry no
// timestamps, so that the same tree always builds to the same bytes.
var epoch = time.Unix(0, 0)

// Build writes the package in directory dir as a .tar.zst archive to w and
// returns its manifest. dir holds manifest.toml, data/ and the hooks that
// the manifest's [Hooks] declares; anything else at its top level, a hook
// present but not declared (or declared but missing), and every entry that
// Inspect would refuse are errors, reported before or while writing (so w
// may hold a partial archive after an error; BuildFile never leaves one).
//
// The archive is deterministic: manifest.toml first (its bytes as written),
// then SumsFile (unless larger than MaxSumsSize), install.lua and
// remove.lua, then data/ and its entries sorted by path; mtime 0, uid/gid
// 0, no user or group names; permission bits from the source
// (setuid/setgid only where [Files] setuid allows, sticky only on
// directories); symlinks as symlinks; files that share an inode as hard
// links to the first of them. The same tree and the same zstd library
// version give the same bytes, on any machine.
func Build(dir string, w io.Writer) (*Manifest, error) {
	src, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("build %s: %w", dir, err)
	}
	defer src.Close()
	m, err := buildFrom(src, w, MaxSumsSize)
	if err != nil {
		return nil, fmt.Errorf("build %s: %w", dir, err)
	}
	return m, nil
}

// BuildFile builds the package in dir into the file out, atomically: it
// writes a temporary file beside out, fsyncs it, renames it over out and
// fsyncs the directory. It returns the manifest and the archive's digest.
func BuildFile(dir, out string) (m *Manifest, d Digest, err error) {
	f, err := os.CreateTemp(filepath.Dir(out), "."+filepath.Base(out)+".tmp-*")
	if err != nil {
		return nil, d, fmt.Errorf("build %s: %w", out, err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	h := sha256.New()
	if m, err = Build(dir, io.MultiWriter(f, h)); err != nil {
		return nil, d, err
	}
	if err = f.Chmod(0o644); err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), out)
	}
	if err == nil {
		err = SyncPath(filepath.Dir(out))
	}
	if err != nil {
		return nil, d, fmt.Errorf("build %s: %w", out, err)
	}
	h.Sum(d[:0])
	return m, d, nil
}

// buildFrom reads the package source in src, validates it, and writes the
// archive to w, with a SumsFile unless it would be larger than maxSums (a
// package of hundreds of thousands of long paths: the list is optional, and
// installing it hashes its files instead).
func buildFrom(src *os.Root, w io.Writer, maxSums int) (*Manifest, error) {
	// 1. The top level: the manifest, hooks that match it, data/.
	manifest, err := readManifestFile(src)
	if err != nil {
		return nil, err
	}
	m, err := ParseManifest(manifest)
	if err != nil {
		return nil, err
	}
	hooks, err := sourceHooks(src, m)
	if err != nil {
		return nil, err
	}
	// 2. The data tree, sorted, with hard links found, and the digests of
	// its regular files.
	data, err := sourceData(src)
	if err != nil {
		return nil, err
	}
	digests, sums, err := sourceSums(src, data)
	if err != nil {
		return nil, err
	}
	if len(sums) > maxSums {
		sums = nil
	}
	// 3. Write, running every header through the reader's checker first.
	zw, err := zstd.NewWriter(w, zstd.WithEncoderLevel(buildLevel), zstd.WithEncoderConcurrency(1))
	if err != nil {
		return nil, fmt.Errorf("zstd writer: %w", err)
	}
	bw := &archiveWriter{k: newChecker(DefaultLimits()), src: src, cw: countingWriter{w: zw}, digests: digests}
	bw.tw = tar.NewWriter(&bw.cw)
	if err := bw.writeAll(m, manifest, sums, hooks, data); err != nil {
		zw.Close()
		return nil, err
	}
	if err := bw.tw.Close(); err != nil {
		return nil, err
	}
	if bw.cw.n > bw.k.lim.MaxTotalSize {
		return nil, fmt.Errorf("the archive would decompress to %d bytes, more than the %d allowed: %w", bw.cw.n, bw.k.lim.MaxTotalSize, ErrTooLarge)
	}
	if err := zw.Close(); err != nil {
		return nil, fmt.Errorf("zstd: %w", err)
	}
	return m, nil
}

func readManifestFile(src *os.Root) ([]byte, error) {
	fi, err := src.Lstat(ManifestFile)
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", ManifestFile)
	}
	if fi.Size() > MaxManifestSize {
		return nil, fmt.Errorf("%s: %d bytes is larger than the %d allowed", ManifestFile, fi.Size(), MaxManifestSize)
	}
	return src.ReadFile(ManifestFile)
}

// sourceHooks checks the top level of the source against the manifest and
// reads the hooks: present exactly when declared, regular, bounded.
func sourceHooks(src *os.Root, m *Manifest) (map[string][]byte, error) {
	top, err := fs.ReadDir(src.FS(), ".")
	if err != nil {
		return nil, err
	}
	present := map[string]bool{}
	for _, e := range top {
		switch n := e.Name(); n {
		case ManifestFile, DataDir, InstallHook, RemoveHook:
			present[n] = true
		default:
			return nil, fmt.Errorf("%q: not allowed at the top of a package (only %s, %s, %s and %s/)", n, ManifestFile, DataDir, InstallHook, RemoveHook)
		}
	}
	hooks := map[string][]byte{}
	for _, h := range []struct{ name, field, declared string }{
		{InstallHook, "install", m.Hooks.Install}, {RemoveHook, "remove", m.Hooks.Remove},
	} {
		switch {
		case present[h.name] && h.declared == "":
			return nil, fmt.Errorf("%s is present but not declared: add %s = %q to the manifest's [Hooks], or remove the file", h.name, h.field, h.name)
		case !present[h.name] && h.declared != "":
			return nil, fmt.Errorf("%s is declared in the manifest's [Hooks] but missing", h.name)
		case !present[h.name]:
			continue
		}
		fi, err := src.Lstat(h.name)
		if err != nil {
			return nil, err
		}
		if !fi.Mode().IsRegular() || fi.Size() > MaxHookSize {
			return nil, fmt.Errorf("%s must be a regular file of at most %d bytes", h.name, MaxHookSize)
		}
		if hooks[h.name], err = src.ReadFile(h.name); err != nil {
			return nil, err
		}
	}
	return hooks, nil
}

// countingWriter counts the bytes of the uncompressed tar stream.
type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

var errChanged = errors.New("file changed while the archive was being built")
