//go:build !unix

package packages

import "io/fs"

// inodeKey identifies a file on its filesystem, to find hard links.
type inodeKey struct{ dev, ino uint64 }

// inodeOf finds no hard links where the platform does not report inodes.
func inodeOf(fs.FileInfo) (inodeKey, bool) { return inodeKey{}, false }
