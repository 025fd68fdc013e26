//go:build unix

package packages

import (
	"io/fs"
	"syscall"
)

// inodeKey identifies a file on its filesystem, to find hard links.
type inodeKey struct{ dev, ino uint64 }

// inodeOf returns fi's inode and whether it has more than one link.
func inodeOf(fi fs.FileInfo) (inodeKey, bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return inodeKey{}, false
	}
	return inodeKey{dev: uint64(st.Dev), ino: uint64(st.Ino)}, st.Nlink > 1
}
