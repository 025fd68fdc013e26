//go:build !linux

package fetch

import "golang.org/x/sys/unix"

// Sync makes every blob written to the cache durable: where there is no
// syncfs(2), with sync(2).
func (c *Cache) Sync() error {
	unix.Sync()
	return nil
}
