package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestCrashSoak kills `packets apply` with SIGKILL at random moments, again
// and again, and after each kill lets the next apply recover and converge.
// After every round: packets verify is clean, no temporary file is left
// under the root, what is installed is exactly what the state asks for,
// and the config file the user edited is intact. The plans alternate
// between installing pinned builds and upgrading half of them (config files
// and hooks included) while removing others.
//
// make test runs a short form; PACKETS_SOAK_KILLS=500 (make soak) runs long.
func TestCrashSoak(t *testing.T) {
	kills := 40
	if n, err := strconv.Atoi(os.Getenv("PACKETS_SOAK_KILLS")); err == nil && n > 0 {
		kills = n
	}
	budget := time.Duration(kills) * 5 * time.Second
	bin, err := exec.LookPath("packets") // testscript put this test binary on $PATH as packets
	if err != nil {
		t.Fatal(err)
	}
	s := newSoak(t, bin)
	states := []string{s.state(false), s.state(true)}

	// A whole apply, uninterrupted, sets the scale of the random kill times.
	s.writeState(states[0])
	start := time.Now()
	s.mustRun("apply", "--yes")
	full := time.Since(start)
	s.userEditsConfig()
	s.check(states[0])

	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	deadline := time.Now().Add(budget)
	survived, recovered := 0, 0
	for i := 0; i < kills && time.Now().Before(deadline); i++ {
		want := states[(i+1)%2]
		s.writeState(want)
		cmd := exec.Command(bin, "--root", s.root, "apply", "--yes")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(rng.Int64N(int64(full) + 1))) // chaos: a random instant, on purpose
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
		if out := s.mustRun("apply", "--yes"); strings.Contains(out, "recovered: ") { // recovers, then converges
			recovered++
		}
		s.check(want)
		survived++
	}
	t.Logf("survived %d SIGKILLs at random moments, %d of them inside a transaction that the next apply recovered (one uninterrupted apply: %s)",
		survived, recovered, full.Round(time.Millisecond))
	if survived == 0 {
		t.Fatal("no round ran")
	}
}

type soak struct {
	t          *testing.T
	bin, root  string
	configPath string // the config file the user edits
	mine       string // what they wrote
}

const soakPackages = 12

// newSoak builds a repository of soakPackages packages (every other one in
// two serials; some with config files, some with hooks that place a binary),
// serves it on loopback, and syncs a fresh root from it.
func newSoak(t *testing.T, bin string) *soak {
	s := &soak{t: t, bin: bin, root: filepath.Join(t.TempDir(), "root")}
	work := t.TempDir()
	repo := filepath.Join(work, "repo")
	for i := range soakPackages {
		for serial := 1; serial <= 1+i%2; serial++ {
			src := filepath.Join(work, fmt.Sprintf("p%02d-%d", i, serial))
			writeSoakPackage(t, src, i, serial)
			s.mustRun("build", src, "-o", filepath.Join(repo, "packages", filepath.Base(src)+".tar.zst"))
		}
	}
	s.publish(work, repo)
	s.configPath = filepath.Join(s.root, "opt/packets/p00/data/etc/p00.conf")
	return s
}

// publish signs and indexes the archives of repo/packages with a key made
// in work, serves repo on loopback, and syncs s's root from it.
func (s *soak) publish(work, repo string) {
	t := s.t
	s.mustRun("key", "generate", "--out", filepath.Join(work, "key"))
	s.mustRun("repo", "index", repo, "--key", filepath.Join(work, "key.key"))
	srv := httptest.NewServer(http.FileServer(http.Dir(repo)))
	t.Cleanup(srv.Close)
	pub, err := os.ReadFile(filepath.Join(work, "key.pub"))
	if err != nil {
		t.Fatal(err)
	}
	mustWriteFile(t, filepath.Join(s.root, "etc/packets/keys/key.pub"), string(pub))
	s.mustRun("sync", srv.URL)
}

func writeSoakPackage(t *testing.T, dir string, i, serial int) {
	name := fmt.Sprintf("p%02d", i)
	manifest := fmt.Sprintf("[Info]\nname = %q\nversion = \"%d.0\"\nfamily = \"00000000-0000-4000-8000-%012d\"\nserial = %d\n", name, serial, i, serial)
	if i%3 == 0 {
		manifest += "\n[Files]\nconfig = [\"data/etc/" + name + ".conf\"]\n"
		mustWriteFile(t, filepath.Join(dir, "data/etc", name+".conf"), fmt.Sprintf("# %s %d\nlevel = %d\n", name, serial, serial))
	}
	if i%4 == 1 {
		manifest += "\n[Hooks]\ninstall = \"install.lua\"\nremove = \"remove.lua\"\n"
		mustWriteFile(t, filepath.Join(dir, "install.lua"), `local ok, err = os.copy(path_join(data_dir, "bin/tool"), path_join(packets_bin_dir, "`+name+`"))
if not ok then error(err) end
`)
		mustWriteFile(t, filepath.Join(dir, "remove.lua"), `os.remove(path_join(packets_bin_dir, "`+name+`"))`+"\n")
	}
	mustWriteFile(t, filepath.Join(dir, "manifest.toml"), manifest)
	mustWriteFile(t, filepath.Join(dir, "data/bin/tool"), fmt.Sprintf("#!/bin/sh\necho %s %d\n", name, serial))
	// Files that change, appear and disappear between serials.
	for j := range 40 {
		if j%7 == serial {
			continue
		}
		body := strings.Repeat(fmt.Sprintf("%s serial %d file %d\n", name, serial, j), 20+j*5)
		mustWriteFile(t, filepath.Join(dir, "data/share", name, fmt.Sprintf("f%02d", j)), body)
	}
}

// state declares every package pinned to 1.0, or (upgrade) the first
// two thirds at their newest and the rest removed.
func (s *soak) state(upgrade bool) string {
	var b strings.Builder
	for i := range soakPackages {
		switch {
		case !upgrade:
			fmt.Fprintf(&b, "package \"p%02d\" {\n  version = \"= 1.0\"\n}\n", i)
		case i < soakPackages*2/3:
			fmt.Fprintf(&b, "package \"p%02d\" {}\n", i)
		}
	}
	return b.String()
}

func (s *soak) writeState(content string) {
	mustWriteFile(s.t, filepath.Join(s.root, "etc/packets/state.hcl"), content)
}

func (s *soak) userEditsConfig() {
	s.mine = "# mine, edited by hand\nlevel = 99\n"
	mustWriteFile(s.t, s.configPath, s.mine)
}

func (s *soak) mustRun(args ...string) string {
	s.t.Helper()
	if !strings.Contains(strings.Join(args, " "), "build") && args[0] != "key" && args[0] != "repo" {
		args = append([]string{"--root", s.root}, args...)
	}
	out, err := s.exec(args...)
	if err != nil {
		s.t.Fatalf("packets %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// exec runs packets with args and returns its output, stdout and stderr.
func (s *soak) exec(args ...string) (string, error) {
	cmd := exec.Command(s.bin, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

// check asserts the invariants of DESIGN.md §8 after a round.
func (s *soak) check(state string) {
	t := s.t
	t.Helper()
	s.mustRun("verify") // exits 1 on any difference
	filepath.WalkDir(s.root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && d.Name() == "packets" && strings.HasSuffix(filepath.Dir(p), "cache") {
			return fs.SkipDir // partial downloads are kept on purpose, to resume
		}
		if strings.HasPrefix(d.Name(), ".pk-") || strings.Contains(d.Name(), ".tmp-") {
			t.Errorf("temporary file left behind: %s", p)
		}
		return nil
	})
	var doc struct {
		Packages []struct{ Name, Version string }
	}
	if err := json.Unmarshal([]byte(s.mustRun("list", "--json")), &doc); err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, p := range doc.Packages {
		got[p.Name] = p.Version
	}
	pinned := strings.Contains(state, "= 1.0")
	for i := range soakPackages {
		name := fmt.Sprintf("p%02d", i)
		want := ""
		switch {
		case pinned:
			want = "1.0"
		case i < soakPackages*2/3:
			want = fmt.Sprintf("%d.0", 1+i%2)
		}
		if got[name] != want {
			t.Fatalf("%s is installed at %q, want %q", name, got[name], want)
		}
	}
	if s.mine != "" {
		b, err := os.ReadFile(s.configPath)
		if err != nil || string(b) != s.mine {
			t.Fatalf("the user's config file %s: %q, %v; want it kept as they wrote it", s.configPath, b, err)
		}
	}
}

func mustWriteFile(t testing.TB, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}
