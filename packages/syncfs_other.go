//go:build !linux

package packages

import (
	"errors"
	"fmt"
	"os"
)

// SyncFS makes everything written to the filesystem holding root durable.
// packets runs on Linux; elsewhere there is no syncfs(2), and SyncFS says so.
func SyncFS(root *os.Root) error {
	return fmt.Errorf("syncfs %s: %w", root.Name(), errors.ErrUnsupported)
}
