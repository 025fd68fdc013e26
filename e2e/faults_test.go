package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// faultMachine is a soak machine (see newSoak) with state 0 applied and
// state 1 written, so the next apply has work to do. Root only.
func faultMachine(t *testing.T) (*soak, []string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount filesystems")
	}
	bin, err := exec.LookPath("packets") // testscript put this test binary on $PATH as packets
	if err != nil {
		t.Fatal(err)
	}
	s := newSoak(t, bin)
	states := []string{s.state(false), s.state(true)}
	s.writeState(states[0])
	s.mustRun("apply", "--yes")
	s.check(states[0])
	s.writeState(states[1])
	return s, states
}

// mustFail runs packets on s's root, requires it to fail, and returns its output.
func (s *soak) mustFail(args ...string) string {
	s.t.Helper()
	out, err := s.exec(append([]string{"--root", s.root}, args...)...)
	if err == nil {
		s.t.Fatalf("packets %s succeeded, want a failure\n%s", strings.Join(args, " "), out)
	}
	return out
}

// TestReadOnlyRoot: the machine's root turns read-only after a good apply.
// The next apply fails saying so and changes nothing; once the root is
// writable again, apply converges.
func TestReadOnlyRoot(t *testing.T) {
	s, states := faultMachine(t)
	// A bind mount of the root onto itself, so only it can be made read-only.
	if err := syscall.Mount(s.root, s.root, "", syscall.MS_BIND, ""); err != nil {
		t.Skipf("cannot bind-mount the root: %v", err)
	}
	t.Cleanup(func() { syscall.Unmount(s.root, syscall.MNT_DETACH) })
	remount := func(flags uintptr) {
		t.Helper()
		if err := syscall.Mount("", s.root, "", syscall.MS_REMOUNT|syscall.MS_BIND|flags, ""); err != nil {
			t.Fatal(err)
		}
	}
	remount(syscall.MS_RDONLY)
	out := s.mustFail("apply", "--yes")
	t.Logf("read-only root: %s", lastLine(out))
	if !strings.Contains(out, "read-only file system") {
		t.Errorf("the error does not say the file system is read-only:\n%s", out)
	}
	remount(0)
	s.check(states[0]) // nothing changed
	s.mustRun("apply", "--yes")
	s.check(states[1])
}

// TestDiskFullAtCommit gives var/lib/packets a tmpfs of its own with barely
// room for what it holds: the packages stage and install, but the database
// cannot grow to record them. The apply fails saying the disk is full and
// leaves the machine as it was; with room, the next apply converges.
func TestDiskFullAtCommit(t *testing.T) {
	s, states := faultMachine(t)
	lib := filepath.Join(s.root, "var/lib/packets")
	orig := lib + ".orig"
	if err := os.Rename(lib, orig); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(lib, 0o755); err != nil {
		t.Fatal(err)
	}
	used := duBytes(t, orig)
	size := (used/4096 + 4) * 4096 // four spare pages: less than one commit needs
	if err := syscall.Mount("tmpfs", lib, "tmpfs", 0, "size="+strconv.Itoa(size)); err != nil {
		t.Skipf("cannot mount a tmpfs: %v", err)
	}
	t.Cleanup(func() { syscall.Unmount(lib, syscall.MNT_DETACH) })
	if out, err := exec.Command("cp", "-a", orig+"/.", lib).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v\n%s", err, out)
	}
	os.RemoveAll(orig)

	out := s.mustFail("apply", "--yes")
	t.Logf("lib dir of %d bytes (%d used): %s", size, used, lastLine(out))
	if !strings.Contains(out, "no space left on device") && !strings.Contains(out, "database or disk is full") {
		t.Errorf("the error does not say the disk is full:\n%s", out)
	}
	if strings.Contains(out, "panic") || strings.Contains(out, "malformed") {
		t.Errorf("apply on a full database disk:\n%s", out)
	}
	assertNoTemps(t, s.root)

	if err := syscall.Mount("tmpfs", lib, "tmpfs", syscall.MS_REMOUNT, "size=64m"); err != nil {
		t.Fatal(err)
	}
	s.mustRun("apply", "--yes") // recovers what the failed commit left, then converges
	s.check(states[1])
}

func duBytes(t *testing.T, dir string) int {
	t.Helper()
	n := 0
	filepath.Walk(dir, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			n += int((fi.Size() + 4095) / 4096 * 4096)
		}
		return nil
	})
	return n
}

// TestLockFileDeletedWhileHeld: while one writer holds the lock, someone
// deletes the lock file. packets locks the directory that holds installed.db,
// not the file (which only records the holder's pid), so the next apply still
// waits for the holder and then fails saying so; once the holder lets go, it
// runs and recreates the file.
func TestLockFileDeletedWhileHeld(t *testing.T) {
	s, states := faultMachine(t)
	dirPath := filepath.Join(s.root, "var/lib/packets")
	path := filepath.Join(dirPath, "lock")
	// Hold the lock as a packets writer does: flock the directory, pid in the file.
	held, err := os.Open(dirPath)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	if err := unix.Flock(int(held.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := s.mustFail("apply", "--yes", "--lock-timeout", "100ms")
	if want := "packets (pid " + strconv.Itoa(os.Getpid()) + ") holds the lock"; !strings.Contains(out, want) {
		t.Fatalf("apply while the lock is held: want %q in\n%s", want, out)
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	out = s.mustFail("apply", "--yes", "--lock-timeout", "100ms")
	if !strings.Contains(out, "another packets process holds the lock") {
		t.Fatalf("apply with the lock file deleted while held:\n%s", out)
	}
	s.check(states[0]) // nothing changed while it was held
	held.Close()
	s.mustRun("apply", "--yes", "--lock-timeout", "100ms")
	if _, err := os.Stat(path); err != nil {
		t.Errorf("apply did not recreate the lock file: %v", err)
	}
	s.check(states[1])
}

// TestDirectoryWhereFileExpected: someone made a directory (holding a file
// of their own) where an installed package's file belongs. The upgrade that
// would replace that file refuses, naming the path, and changes nothing;
// once the directory is gone, apply converges.
func TestDirectoryWhereFileExpected(t *testing.T) {
	s, states := faultMachine(t)
	file := filepath.Join(s.root, "opt/packets/p01/data/share/p01/f00")
	if err := os.Remove(file); err != nil {
		t.Fatal(err)
	}
	mustWriteFile(t, filepath.Join(file, "mine"), "the user's\n")
	out := s.mustFail("apply", "--yes")
	t.Logf("directory in the way: %s", lastLine(out))
	if !strings.Contains(out, "/opt/packets/p01/data/share/p01/f00") {
		t.Errorf("the error does not name the path in the way:\n%s", out)
	}
	if b, err := os.ReadFile(filepath.Join(file, "mine")); err != nil || string(b) != "the user's\n" {
		t.Errorf("the user's file in the way: %q, %v", b, err)
	}
	assertNoTemps(t, s.root)
	// Nothing changed: every package is still at its state-0 build.
	list := s.mustRun("list")
	if strings.Contains(list, "2.0") {
		t.Errorf("the refused apply upgraded something:\n%s", list)
	}
	if err := os.RemoveAll(file); err != nil {
		t.Fatal(err)
	}
	s.mustRun("apply", "--yes")
	s.check(states[1])
}
