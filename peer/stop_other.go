//go:build !linux

package peer

import (
	"context"
	"errors"
)

// Stop is supported on Linux only (it needs pidfds and /proc).
func Stop(ctx context.Context, pidFile string) error {
	return errors.ErrUnsupported
}
