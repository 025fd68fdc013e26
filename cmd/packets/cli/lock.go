package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// lockFile is the writers' lock: an flock on /var/lib/packets/lock. The file
// is never deleted (deleting a held flock file would let a second writer lock
// a new inode); the holder writes its pid into it so a waiting command can
// say who holds it.
type lockFile struct{ f *os.File }

// LockedError says that another packets process holds the lock.
type LockedError struct {
	Path string
	PID  int // 0 when unknown
	Wait time.Duration
}

func (e *LockedError) Error() string {
	who := "another packets process"
	if e.PID > 0 {
		who = fmt.Sprintf("packets (pid %d)", e.PID)
	}
	return fmt.Sprintf("%s holds the lock %s; waited %s (see --lock-timeout)", who, e.Path, e.Wait)
}

// acquireLock takes the exclusive lock at path, waiting up to timeout.
// onWait is called once if the lock is busy, so a person knows why nothing
// happens.
func acquireLock(ctx context.Context, path string, timeout time.Duration, onWait func(pid int)) (*lockFile, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("lock: %w", err)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("lock: %w", err)
	}
	deadline := time.Now().Add(timeout)
	waited := false
	for delay := 10 * time.Millisecond; ; delay = min(delay*2, 250*time.Millisecond) {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			break
		}
		if !errors.Is(err, unix.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		pid := holderPID(f)
		if time.Now().After(deadline) {
			f.Close()
			return nil, &LockedError{Path: path, PID: pid, Wait: timeout}
		}
		if !waited && onWait != nil {
			onWait(pid)
			waited = true
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, ctx.Err()
		case <-time.After(delay):
		}
	}
	// Record who holds it. Truncate first: a shorter pid must not leave digits behind.
	if err := f.Truncate(0); err == nil {
		f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return &lockFile{f: f}, nil
}

func holderPID(f *os.File) int {
	buf := make([]byte, 32)
	n, _ := f.ReadAt(buf, 0)
	pid, _ := strconv.Atoi(strings.TrimSpace(string(buf[:n])))
	return pid
}

// Close releases the lock. The pid is left in the file on purpose: it is
// only read while the lock is held by someone.
func (l *lockFile) Close() error { return l.f.Close() }
