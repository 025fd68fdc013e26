package desired

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"github.com/packets-dev/packets/packages"
)

// readForEdit reads a state file that is about to be edited. It follows a
// symbolic link, so that the edit replaces the link's target and not the
// link (a state file kept in a checkout and linked into /etc stays linked).
// A missing file reads as nil with its path; its directory is created on
// write.
func readForEdit(file string) (path string, src []byte, err error) {
	path = file
	if fi, err := os.Lstat(file); err == nil && fi.Mode()&fs.ModeSymlink != 0 {
		if path, err = filepath.EvalSymlinks(file); err != nil {
			return "", nil, fmt.Errorf("desired state: %w", err)
		}
	}
	src, err = os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return path, nil, nil
	case err != nil:
		return "", nil, fmt.Errorf("desired state: %w", err)
	}
	if src == nil {
		src = []byte{} // an empty file exists: tell it from a missing one
	}
	return path, src, nil
}

// writeFileAtomic replaces path with data so that a crash at any instant
// leaves either the old or the new file, never a mix: write a temporary file
// in the same directory, fsync it, rename it over path, fsync the directory.
// The temporary name is hidden and does not end in .hcl, so a loader reading
// the directory meanwhile never takes it for a state file. The file keeps
// the mode and, when the process may, the owner of the one it replaces; a
// new file gets newPerm.
func writeFileAtomic(path string, data []byte, newPerm fs.FileMode) (err error) {
	dir, base := filepath.Dir(path), filepath.Base(path)
	perm, uid, gid := newPerm, -1, -1
	switch fi, err := os.Stat(path); {
	case err == nil:
		perm = fi.Mode().Perm()
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			uid, gid = int(st.Uid), int(st.Gid)
		}
	case errors.Is(err, fs.ErrNotExist):
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
	default:
		return err
	}
	tmp, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_ = tmp.Close()
			_ = os.Remove(tmp.Name())
		}
	}()
	if _, err := tmp.Write(data); err != nil {
		return err
	}
	if err := tmp.Chmod(perm); err != nil {
		return err
	}
	if uid >= 0 && (uid != os.Getuid() || gid != os.Getgid()) {
		// Best effort: only root may give a file away; a user editing
		// their own state under --root keeps the file as theirs anyway.
		_ = tmp.Chown(uid, gid)
	}
	if err := tmp.Sync(); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	return packages.SyncPath(dir)
}
