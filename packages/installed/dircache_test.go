package installed

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/packets-dev/packets/packages"
)

func TestDirCache(t *testing.T) {
	dir := t.TempDir()
	outside := t.TempDir()
	must(t, os.WriteFile(filepath.Join(outside, "secret"), []byte("host"), 0o600))
	must(t, os.MkdirAll(filepath.Join(dir, "real/sub"), 0o755))
	must(t, os.WriteFile(filepath.Join(dir, "real/sub/f"), []byte("data"), 0o644))
	must(t, os.Chmod(filepath.Join(dir, "real/sub/f"), 0o755|fs.ModeSetuid))
	must(t, os.Symlink("f", filepath.Join(dir, "real/sub/link")))
	must(t, os.Symlink("real", filepath.Join(dir, "inside"))) // an administrator's symlink in the root
	must(t, os.Symlink(outside, filepath.Join(dir, "abs")))   // leads out, absolutely
	must(t, os.Symlink("../../..", filepath.Join(dir, "up"))) // and relatively
	must(t, os.MkdirAll(filepath.Join(dir, "empty"), 0o755))  //
	root, err := os.OpenRoot(dir)
	must(t, err)
	defer root.Close()
	dc := dirCache{root: root}
	defer dc.close()

	var st unix.Stat_t
	must(t, dc.lstat("real/sub/f", &st))
	f := fileFromStat("p", "/real/sub/f", &st)
	if f.Type != TypeFile || f.Size != 4 || f.Mode != 0o755|fs.ModeSetuid {
		t.Errorf("lstat real/sub/f = %+v", f)
	}
	must(t, dc.lstat("inside/sub/f", &st)) // through a symlink that stays inside
	if d, err := dc.hash("inside/sub/f"); err != nil || d != packages.SumBytes([]byte("data")) {
		t.Errorf("hash = %v, %v", d, err)
	}
	if l, err := dc.readlink("real/sub/link"); err != nil || l != "f" {
		t.Errorf("readlink = %q, %v", l, err)
	}
	if _, err := dc.hash("real/sub/link"); !errors.Is(err, syscall.ELOOP) {
		t.Errorf("hash through a symlink: %v, want ELOOP (never followed)", err)
	}
	for _, p := range []string{"abs/secret", "up/etc/passwd"} {
		if err := dc.lstat(p, &st); err == nil || errors.Is(err, fs.ErrNotExist) {
			t.Errorf("lstat %s = %v, want refused: the symlink leads out of the root", p, err)
		}
	}
	if err := dc.lstat("real/missing/x", &st); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("lstat under a missing dir: %v, want not exist", err)
	}
	must(t, dc.remove("real/sub/link"))
	must(t, dc.remove("empty"))
	if err := dc.remove("real/sub"); !errors.Is(err, syscall.ENOTEMPTY) && !errors.Is(err, syscall.EEXIST) {
		t.Errorf("remove a full directory: %v, want ENOTEMPTY", err)
	}
	for _, p := range []string{"real/sub/link", "empty"} {
		if _, err := os.Lstat(filepath.Join(dir, p)); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s still there: %v", p, err)
		}
	}
	if _, err := os.Stat(filepath.Join(outside, "secret")); err != nil {
		t.Fatal(err)
	}
}
