package packages

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"syscall"
)

// Publish puts the staged tree in place: a tree staged whole by renaming
// TopTemp to Top (refused if Top appeared meanwhile), otherwise by renaming
// every temporary over its final name, in archive order; then it gives the
// archive's directories their modes (deepest first): whatever Extract
// made them with, a directory can differ by what it inherited (a setgid
// or default-ACL parent), unless Extract knows it does not (ModeSet). Call
// it after SyncFS made the staged files
// durable, and call SyncFS again after it to make the renames durable.
//
// skip, when not nil, is asked about each non-directory: it returns
// (dst, true) to publish the file at root-relative dst instead of Final
// (the apply engine saves a new config file as "<final>.packets-new"), or
// ("", true) to leave the file out (it is removed); (_, false) publishes at
// Final. A directory in the way of a file is an error naming it. Publish
// stops at the first error; what it renamed before stays.
func (s *Staged) Publish(root *os.Root, skip func(StagedFile) (dst string, ok bool)) error {
	if s.Top != "" {
		if err := renameNoReplace(root, s.TopTemp, s.Top); err != nil {
			return fmt.Errorf("publish %s: %w", s.Top, err)
		}
	}
	c := newDirs(root, s.Dest)
	defer c.close()
	for _, f := range s.Files {
		from := f.Temp
		if s.Top != "" && f.Type != TypeDir {
			from = f.Final // in place already
		}
		if from == "" {
			continue
		}
		dst := f.Final
		if skip != nil {
			if d, ok := skip(f); ok {
				dst = d
			}
		}
		switch {
		case dst == from:
		case dst == "":
			if err := root.Remove(from); err != nil {
				return fmt.Errorf("publish %s: %w", f.Final, err)
			}
		default:
			if err := c.rename(from, dst); err != nil {
				if fi, serr := root.Lstat(dst); serr == nil && fi.IsDir() {
					return fmt.Errorf("publish %s: a directory is in the way of the archive's %s", dst, f.Type)
				}
				return fmt.Errorf("publish %s: %w", dst, err)
			}
		}
	}
	for i := len(s.Files) - 1; i >= 0; i-- {
		if f := s.Files[i]; f.Type == TypeDir && !f.ModeSet {
			if err := c.chmodDir(f.Final, f.Mode); err != nil {
				return fmt.Errorf("publish %s: %w", f.Final, err)
			}
		}
	}
	return nil
}

// At returns where f is until Publish: its temporary, its place in the
// tree staged whole, or (a directory in an existing Dest) its final name.
func (s *Staged) At(f StagedFile) string {
	switch {
	case f.Temp != "":
		return f.Temp
	case s.Top != "" && within(f.Final, s.Top):
		return s.TopTemp + f.Final[len(s.Top):]
	}
	return f.Final
}

// Discard removes every staged temporary and then the directories that
// Extract created, children first, leaving any that are no longer empty;
// a tree staged whole, it removes whole. Missing temporaries are not an
// error, so Discard may be repeated.
func (s *Staged) Discard(root *os.Root) error {
	if s.TopTemp != "" {
		return root.RemoveAll(s.TopTemp) // nothing of it is published: Publish has not run
	}
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
