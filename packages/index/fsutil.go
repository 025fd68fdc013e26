package index

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/packets-dev/packets/packages"
)

// tmpInfix marks this package's temporary files: ".NAME.tmp-RANDOM" beside
// their destination NAME.
const tmpInfix = ".tmp-"

// createTemp creates an empty temporary file beside dest.
func createTemp(dest string) (*os.File, error) {
	return os.CreateTemp(filepath.Dir(dest), "."+filepath.Base(dest)+tmpInfix+"*")
}

// writeFileAtomic replaces path with data: a temporary file beside it is
// written, made durable, given perm and renamed over path, and the rename is
// made durable. Readers see the old content or the new, never a mixture.
func writeFileAtomic(path string, data []byte, perm fs.FileMode) error {
	f, err := createTemp(path)
	if err != nil {
		return err
	}
	tmp := f.Name()
	if err := writeSyncClose(f, data, perm); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	return packages.SyncPath(filepath.Dir(path))
}

// writeFileNew writes data to path, which must not exist yet: the file
// appears complete or not at all (a temporary file is hard-linked to path,
// which fails if path exists).
func writeFileNew(path string, data []byte, perm fs.FileMode) error {
	f, err := createTemp(path)
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	if err := writeSyncClose(f, data, perm); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	err = os.Link(tmp, path)
	if errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("%s already exists: refusing to overwrite it", path)
	}
	if err != nil {
		// A filesystem without hard links (vfat, some FUSE): create the
		// file exclusively instead; a crash may then leave it partial.
		if err := writeExclusive(path, data, perm); err != nil {
			return err
		}
	}
	return packages.SyncPath(filepath.Dir(path))
}

func writeExclusive(path string, data []byte, perm fs.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("%s already exists: refusing to overwrite it", path)
	}
	if err != nil {
		return err
	}
	if err := writeSyncClose(f, data, perm); err != nil {
		os.Remove(path)
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

func writeSyncClose(f *os.File, data []byte, perm fs.FileMode) error {
	_, err := f.Write(data)
	if err == nil {
		err = f.Chmod(perm)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// removeTemps deletes leftovers of this package's temporary files for dest,
// from a crash or a killed run. Callers hold the lock that serialises writers
// of dest's directory.
func removeTemps(dest string) {
	pattern := filepath.Join(filepath.Dir(dest), "."+filepath.Base(dest)+tmpInfix+"*")
	matches, _ := filepath.Glob(pattern) // the pattern is well formed
	for _, m := range matches {
		os.Remove(m)
	}
}
