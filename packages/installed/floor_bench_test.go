package installed

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// BenchmarkFloorZstdTar is the floor BenchmarkApply is measured against in
// the same run: the same 200 archives unpacked by the zstd and tar
// commands (zstd -dc ARCHIVE | tar -x), one after another, with no
// durability at all. Compare ns/op with BenchmarkApply's on the same
// filesystem: go test -run '^$' -bench 'Apply|Floor' ./packages/installed
func BenchmarkFloorZstdTar(b *testing.B) {
	for _, tool := range []string{"zstd", "tar", "sh"} {
		if _, err := exec.LookPath(tool); err != nil {
			b.Skipf("needs %s", tool)
		}
	}
	for name, dir := range benchDirs(b) {
		b.Run(name, func(b *testing.B) {
			top := dir()
			base := newMachineIn(b, b.TempDir())
			pkgs := benchBatch(base)
			n := 0
			var cpu cpuClock
			for b.Loop() {
				n++
				cpu.start()
				for _, p := range pkgs {
					dest := filepath.Join(top, fmt.Sprint(n), string(p.Name))
					must(b, os.MkdirAll(dest, 0o755))
					cmd := exec.Command("sh", "-c", `zstd -qdc "$1" | tar -x -C "$2"`, "sh", base.cache[p.Digest], dest)
					if out, err := cmd.CombinedOutput(); err != nil {
						b.Fatalf("%v: %s", err, out)
					}
				}
				cpu.stop()
			}
			reportFiles(b, &cpu)
		})
	}
}
