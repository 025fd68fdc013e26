package fetch

import (
	"fmt"
	"os"

	"github.com/packets-dev/packets/packages"
)

// Sync makes every blob written to the cache durable, with their renames:
// one syncfs(2) of the filesystem that holds it (packages.SyncFS).
func (c *Cache) Sync() error {
	root, err := os.OpenRoot(c.Dir)
	if err != nil {
		return fmt.Errorf("cache: %w", err)
	}
	defer root.Close()
	if err := packages.SyncFS(root); err != nil {
		return fmt.Errorf("cache: %w", err)
	}
	return nil
}
