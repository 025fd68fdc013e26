package e2e

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestDiskFull runs packets on a machine whose root is a tiny tmpfs. When
// the disk fills while an archive is unpacked, or while it is downloaded
// into the cache, apply fails saying so, the machine is exactly as it was
// (verify clean, nothing half-installed, no temporary files), and once there
// is room the next apply converges. Root only (it mounts a tmpfs).
func TestDiskFull(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a small tmpfs")
	}
	bin, err := exec.LookPath("packets")
	if err != nil {
		t.Fatal(err)
	}
	work := t.TempDir()
	root := filepath.Join(work, "root")
	mustWriteFile(t, filepath.Join(root, ".keep"), "")
	if err := syscall.Mount("tmpfs", root, "tmpfs", 0, "size=3m"); err != nil {
		t.Skipf("cannot mount a tmpfs: %v", err)
	}
	t.Cleanup(func() { syscall.Unmount(root, syscall.MNT_DETACH) })
	run := func(wantOK bool, args ...string) string {
		t.Helper()
		cmd := exec.Command(bin, args...)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		err := cmd.Run()
		if (err == nil) != wantOK {
			t.Fatalf("packets %s: %v, want success %v\n%s", strings.Join(args, " "), err, wantOK, out.String())
		}
		return out.String()
	}

	// small: fits. sparse: a 20 KB archive of 8 MB of repeated text (fits
	// the cache, not the disk). noise: 5 MB that does not compress.
	repo := filepath.Join(work, "repo")
	for i, p := range []struct {
		name string
		data func(dir string)
	}{
		{"small", func(dir string) { mustWriteFile(t, filepath.Join(dir, "data/small.txt"), "small\n") }},
		{"sparse", func(dir string) {
			for i := range 8 {
				mustWriteFile(t, filepath.Join(dir, fmt.Sprintf("data/f%d", i)), strings.Repeat("packets ", 1<<17))
			}
		}},
		{"noise", func(dir string) {
			b := make([]byte, 5<<20)
			rand.Read(b)
			mustWriteFile(t, filepath.Join(dir, "data/noise.bin"), string(b))
		}},
	} {
		dir := filepath.Join(work, p.name)
		mustWriteFile(t, filepath.Join(dir, "manifest.toml"), fmt.Sprintf("[Info]\nname = %q\nversion = \"1\"\nfamily = \"00000000-0000-4000-8000-0000000000%02d\"\nserial = 1\n", p.name, i))
		p.data(dir)
		run(true, "build", dir, "-o", filepath.Join(repo, "packages", p.name+".tar.zst"))
	}
	run(true, "key", "generate", "--out", filepath.Join(work, "key"))
	run(true, "repo", "index", repo, "--key", filepath.Join(work, "key.key"))
	srv := httptest.NewServer(http.FileServer(http.Dir(repo)))
	t.Cleanup(srv.Close)
	pub, _ := os.ReadFile(filepath.Join(work, "key.pub"))
	mustWriteFile(t, filepath.Join(root, "etc/packets/keys/key.pub"), string(pub))
	state := filepath.Join(root, "etc/packets/state.hcl")
	r := []string{"--root", root}
	run(true, append(r, "sync", srv.URL)...)
	mustWriteFile(t, state, "package \"small\" {}\n")
	run(true, append(r, "apply", "--yes")...)

	for _, tc := range []struct{ name, add, where string }{
		{"staging", "sparse", "unpacking"},
		{"download", "noise", "downloading"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mustWriteFile(t, state, fmt.Sprintf("package \"small\" {}\npackage %q {}\n", tc.add))
			out := run(false, append(r, "apply", "--yes")...)
			t.Logf("%s: %s", tc.where, lastLine(out))
			if !strings.Contains(out, "no space left on device") {
				t.Errorf("%s: the error does not say the disk is full:\n%s", tc.where, out)
			}
			list := run(true, append(r, "list")...)
			if strings.Contains(list, tc.add) || !strings.Contains(list, "small") {
				t.Errorf("after a failed apply the machine changed:\n%s", list)
			}
			run(true, append(r, "verify")...)
			assertNoTemps(t, root)
		})
	}

	// Room again: the next apply converges.
	if err := syscall.Mount("tmpfs", root, "tmpfs", syscall.MS_REMOUNT, "size=64m"); err != nil {
		t.Fatal(err)
	}
	mustWriteFile(t, state, "package \"small\" {}\npackage \"sparse\" {}\npackage \"noise\" {}\n")
	run(true, append(r, "apply", "--yes")...)
	run(true, append(r, "verify")...)
	assertNoTemps(t, root)
}

func assertNoTemps(t *testing.T, root string) {
	t.Helper()
	filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err == nil && (strings.HasPrefix(fi.Name(), ".pk-") || strings.Contains(fi.Name(), ".tmp-")) {
			t.Errorf("temporary file left behind: %s", p)
		}
		return nil
	})
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}
