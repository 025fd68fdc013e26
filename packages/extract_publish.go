package packages

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"syscall"
)

// Publish renames every staged temporary over its final name, in archive
// order, then gives the archive's directories their modes (deepest first).
// Call it after SyncFS made the staged files durable, and call SyncFS again
// after it to make the renames durable.
//
// skip, when not nil, is asked about each non-directory: it returns
// (dst, true) to publish the file at root-relative dst instead of Final
// (the apply engine saves a new config file as "<final>.packets-new"), or
// ("", true) to leave the file out (its temporary is removed); (_, false)
// publishes at Final. A directory in the way of a file is an error naming
// it. Publish stops at the first error; what it renamed before stays.
func (s *Staged) Publish(root *os.Root, skip func(StagedFile) (dst string, ok bool)) error {
	c := newDirs(root, s.Dest)
	defer c.close()
	for _, f := range s.Files {
		if f.Temp == "" {
			continue
		}
		dst := f.Final
		if skip != nil {
			if d, ok := skip(f); ok {
				dst = d
			}
		}
		if dst == "" {
			if err := root.Remove(f.Temp); err != nil {
				return fmt.Errorf("publish %s: %w", f.Final, err)
			}
			continue
		}
		if err := c.rename(f.Temp, dst); err != nil {
			if fi, serr := root.Lstat(dst); serr == nil && fi.IsDir() {
				return fmt.Errorf("publish %s: a directory is in the way of the archive's %s", dst, f.Type)
			}
			return fmt.Errorf("publish %s: %w", dst, err)
		}
	}
	for i := len(s.Files) - 1; i >= 0; i-- {
		if f := s.Files[i]; f.Type == TypeDir {
			if err := c.chmodDir(f.Final, f.Mode); err != nil {
				return fmt.Errorf("publish %s: %w", f.Final, err)
			}
		}
	}
	return nil
}

// Discard removes every staged temporary and then the directories that
// Extract created, children first, leaving any that are no longer empty.
// Missing temporaries are not an error, so Discard may be repeated.
func (s *Staged) Discard(root *os.Root) error {
	var errs []error
	for i := len(s.Files) - 1; i >= 0; i-- {
		if t := s.Files[i].Temp; t != "" {
			if err := root.Remove(t); err != nil && !errors.Is(err, fs.ErrNotExist) {
				errs = append(errs, err)
			}
		}
	}
	for i := len(s.NewDirs) - 1; i >= 0; i-- {
		err := root.Remove(s.NewDirs[i])
		if err != nil && !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, syscall.ENOTEMPTY) && !errors.Is(err, syscall.EEXIST) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
