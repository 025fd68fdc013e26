package cli

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestLock(t *testing.T) {
	path := filepath.Join(t.TempDir(), "var/lib/packets/lock")
	first, err := acquireLock(t.Context(), path, time.Second, nil)
	if err != nil {
		t.Fatal(err)
	}
	// flock belongs to an open file description: a second open in this
	// process contends exactly as another process would.
	waited := 0
	_, err = acquireLock(t.Context(), path, 50*time.Millisecond, func(pid int) {
		waited++
		if pid != os.Getpid() {
			t.Errorf("onWait got pid %d, want the holder's %d", pid, os.Getpid())
		}
	})
	var locked *LockedError
	if !errors.As(err, &locked) {
		t.Fatalf("second acquire: %v, want a *LockedError", err)
	}
	if locked.PID != os.Getpid() || waited != 1 {
		t.Errorf("LockedError.PID = %d (want %d), onWait called %d times (want 1)", locked.PID, os.Getpid(), waited)
	}
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	second, err := acquireLock(t.Context(), path, time.Second, nil)
	if err != nil {
		t.Fatalf("acquire after release: %v", err)
	}
	second.Close()
	if _, err := os.Stat(path); err != nil {
		t.Errorf("the lock file must never be deleted: %v", err)
	}
}

// Deleting the lock file while the lock is held lets nobody in: the flock
// is on the directory, the file only names the holder.
func TestLockFileDeletedWhileHeld(t *testing.T) {
	path := filepath.Join(t.TempDir(), "var/lib/packets/lock")
	a, err := acquireLock(t.Context(), path, time.Second, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	var locked *LockedError
	if _, err := acquireLock(t.Context(), path, 50*time.Millisecond, nil); !errors.As(err, &locked) {
		t.Fatalf("acquire after the lock file was deleted: %v, want a *LockedError", err)
	}
	a.Close()
	b, err := acquireLock(t.Context(), path, time.Second, nil)
	if err != nil {
		t.Fatalf("acquire after release: %v", err)
	}
	defer b.Close()
	if pid := holderPID(path); pid != os.Getpid() {
		t.Errorf("the lock file names pid %d, want %d", pid, os.Getpid())
	}
}
