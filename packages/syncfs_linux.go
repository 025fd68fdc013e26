package packages

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// SyncFS makes everything written to the filesystem holding root durable
// with one syncfs(2): the batched flush of DESIGN §8, instead of an fsync
// per file. It covers renames too, so it is called once after Extract and
// once after Publish. A filesystem mounted below root is a different one:
// call SyncFS on a root opened inside it as well.
func SyncFS(root *os.Root) error {
	f, err := root.Open(".")
	if err != nil {
		return fmt.Errorf("syncfs %s: %w", root.Name(), err)
	}
	defer f.Close()
	if err := unix.Syncfs(int(f.Fd())); err != nil {
		return fmt.Errorf("syncfs %s: %w", root.Name(), err)
	}
	return nil
}
