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

// lockFile is the writers' lock. The flock is taken on the directory that
// holds installed.db (/var/lib/packets), which cannot be unlinked from under
// a writer without the database going with it: a lock on a file could be, and
// a second writer would then lock a new file beside a deleted one. The lock
// file in that directory only records the holder's pid, so that a waiting
// command can say who holds the lock; it is never deleted, and deleting it
// by hand changes nothing.
type lockFile struct{ dir, pidFile *os.File }

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

// acquireLock takes the exclusive lock guarding path's directory, waiting up
// to timeout, and records this process's pid in path. onWait is called once
// if the lock is busy, so a person knows why nothing happens.
func acquireLock(ctx context.Context, path string, timeout time.Duration, onWait func(pid int)) (*lockFile, error) {
	dirPath := filepath.Dir(path)
	if err := os.MkdirAll(dirPath, 0o755); err != nil {
		return nil, fmt.Errorf("lock: %w", err)
	}
	dir, err := os.Open(dirPath)
	if err != nil {
		return nil, fmt.Errorf("lock: %w", err)
	}
	deadline := time.Now().Add(timeout)
	waited := false
	for delay := 10 * time.Millisecond; ; delay = min(delay*2, 250*time.Millisecond) {
		err := unix.Flock(int(dir.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			break
		}
		if !errors.Is(err, unix.EWOULDBLOCK) && !errors.Is(err, unix.EINTR) {
			dir.Close()
			return nil, fmt.Errorf("lock %s: %w", dirPath, err)
		}
		pid := holderPID(path)
		if time.Now().After(deadline) {
			dir.Close()
			return nil, &LockedError{Path: path, PID: pid, Wait: timeout}
		}
		if !waited && onWait != nil {
			onWait(pid)
			waited = true
		}
		select {
		case <-ctx.Done():
			dir.Close()
			return nil, ctx.Err()
		case <-time.After(delay):
		}
	}
	// Record who holds it. Truncate first: a shorter pid must not leave digits behind.
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		dir.Close()
		return nil, fmt.Errorf("lock: %w", err)
	}
	if err := f.Truncate(0); err == nil {
		f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return &lockFile{dir: dir, pidFile: f}, nil
}

// holderPID reads the pid the holder recorded, or 0.
func holderPID(path string) int {
	b, err := os.ReadFile(path)
	if err != nil || len(b) > 32 {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return pid
}

// Close releases the lock. The pid is left in the file on purpose: it is
// only read while the lock is held by someone.
func (l *lockFile) Close() error {
	l.pidFile.Close()
	return l.dir.Close()
}
