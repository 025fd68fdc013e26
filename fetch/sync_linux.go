package fetch

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// Sync makes every blob written to the cache durable, with their renames:
// one syncfs(2) of the filesystem that holds it.
func (c *Cache) Sync() error {
	f, err := os.Open(c.Dir)
	if err != nil {
		return fmt.Errorf("cache: %w", err)
	}
	defer f.Close()
	if err := unix.Syncfs(int(f.Fd())); err != nil {
		return fmt.Errorf("cache: syncfs %s: %w", c.Dir, err)
	}
	return nil
}
