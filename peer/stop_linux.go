package peer

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"time"

	"golang.org/x/sys/unix"
)

// Bounds of Stop: how long the daemon gets to finish after SIGTERM, and
// after SIGKILL.
const (
	stopGrace = 10 * time.Second
	killGrace = 2 * time.Second
)

// Stop stops the daemon of pidFile: SIGTERM, a bounded wait for it to exit
// (ctx may shorten it), then SIGKILL. It signals only a process that
// IsPacketsDaemon recognises, through a pidfd opened before the check, so
// that a pid reused by another process in between is never signalled. A
// missing pid file, or a stale one (removed here), is an error matching
// ErrNotRunning.
func Stop(ctx context.Context, pidFile string) error {
	pid, err := ReadPIDFile(pidFile)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("no pid file %s: %w", pidFile, ErrNotRunning)
	case err != nil:
		if rerr := removeStale(pidFile); rerr != nil {
			return errors.Join(err, rerr)
		}
		return fmt.Errorf("%v (removed it): %w", err, ErrNotRunning)
	}
	pidfd, err := unix.PidfdOpen(pid, 0)
	if err != nil && !errors.Is(err, unix.ESRCH) {
		return fmt.Errorf("open process %d: %w", pid, err)
	}
	if err == nil {
		defer unix.Close(pidfd)
	}
	if err != nil || !IsPacketsDaemon(pid) {
		if rerr := removeStale(pidFile); rerr != nil {
			return rerr
		}
		return fmt.Errorf("stale pid file %s (pid %d is not a packets daemon; removed it): %w", pidFile, pid, ErrNotRunning)
	}
	if err := signalAndWait(ctx, pidfd, unix.SIGTERM, stopGrace); err != nil {
		if kerr := signalAndWait(context.WithoutCancel(ctx), pidfd, unix.SIGKILL, killGrace); kerr != nil {
			return fmt.Errorf("stop the peer daemon (pid %d): %w", pid, errors.Join(err, kerr))
		}
	}
	// A daemon removes its pid file when it stops; one that was killed
	// cannot.
	return removePIDFile(pidFile, pid)
}

// signalAndWait sends sig through pidfd and waits up to grace (or ctx) for
// the process to exit.
func signalAndWait(ctx context.Context, pidfd int, sig unix.Signal, grace time.Duration) error {
	if err := unix.PidfdSendSignal(pidfd, sig, nil, 0); err != nil {
		if errors.Is(err, unix.ESRCH) {
			return nil // already gone
		}
		return fmt.Errorf("send %s: %w", sig, err)
	}
	deadline := time.Now().Add(grace)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	// A pidfd becomes readable when its process exits. Poll in slices, so
	// that a cancelled ctx is noticed; the loop is bounded by the deadline.
	for {
		left := time.Until(deadline)
		if left <= 0 || ctx.Err() != nil {
			return fmt.Errorf("still running after %s", sig)
		}
		fds := []unix.PollFd{{Fd: int32(pidfd), Events: unix.POLLIN}}
		n, err := unix.Poll(fds, int(min(left, 100*time.Millisecond).Milliseconds())+1)
		if err != nil && !errors.Is(err, unix.EINTR) {
			return fmt.Errorf("wait for exit: %w", err)
		}
		if n > 0 {
			return nil
		}
	}
}
