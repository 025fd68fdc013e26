package installed

import (
	"fmt"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/packets-dev/packets/packages"
)

const (
	benchPackages = 200
	benchFiles    = 150
)

// benchDirs returns where to benchmark: a tmpfs (the brief's figure, which
// measures the engine's own cost) and the disk t.TempDir() is on (where
// the syncfs and SQLite fsyncs are real).
func benchDirs(b *testing.B) map[string]func() string {
	return map[string]func() string{
		"tmpfs": func() string {
			if fi, err := os.Stat("/dev/shm"); err != nil || !fi.IsDir() {
				b.Skip("no /dev/shm")
			}
			d, err := os.MkdirTemp("/dev/shm", "packets-bench-")
			if err != nil {
				b.Skip(err)
			}
			b.Cleanup(func() { os.RemoveAll(d) })
			return d
		},
		"disk": b.TempDir,
	}
}

// benchBatch builds benchPackages archives of benchFiles small files each.
func benchBatch(m *machine) []*Package {
	var pkgs []*Package
	for i := range benchPackages {
		files := map[string]string{}
		for j := range benchFiles {
			files[fmt.Sprintf("d%d/f%03d", j%10, j)] = strings.Repeat(fmt.Sprintf("%d-%d ", i, j), 10+j)
		}
		pkgs = append(pkgs, m.build(src{name: fmt.Sprintf("pkg%03d", i), version: "1", serial: 1, files: files}))
	}
	return pkgs
}

// BenchmarkApply times Begin, Stage, PreHooks, Commit, PostHooks and Done
// of one batch that installs 200 packages of 150 files into an empty root:
// one syncfs per phase and a handful of SQL transactions for the whole
// batch (DESIGN §8).
func BenchmarkApply(b *testing.B) {
	for name, dir := range benchDirs(b) {
		b.Run(name, func(b *testing.B) {
			top := dir()
			base := newMachineIn(b, b.TempDir())
			pkgs := benchBatch(base)
			n := 0
			var cpu cpuClock
			for b.Loop() {
				b.StopTimer()
				n++
				d := filepath.Join(top, fmt.Sprint(n))
				must(b, os.Mkdir(d, 0o755))
				m := newMachineIn(b, d)
				m.cache = base.cache
				install := make([]Change, len(pkgs))
				for i, p := range pkgs {
					install[i] = m.install(p)
				}
				b.StartTimer()
				cpu.start()
				m.mustApply(install...)
				cpu.stop()
			}
			reportFiles(b, &cpu)
		})
	}
}

// BenchmarkExtractOnly is the floor BenchmarkApply is compared with: the
// same archives extracted and published, as many at a time, with no
// syncfs, no journal and no database.
func BenchmarkExtractOnly(b *testing.B) {
	for name, dir := range benchDirs(b) {
		b.Run(name, func(b *testing.B) {
			m := newMachineIn(b, dir())
			pkgs := benchBatch(m)
			n := 0
			var cpu cpuClock
			for b.Loop() {
				n++
				must(b, m.root.MkdirAll(path.Join("plain", fmt.Sprint(n)), 0o755))
				// GOMAXPROCS at a time, as Stage does.
				cpu.start()
				next := make(chan *Package)
				var wg sync.WaitGroup
				for range runtime.GOMAXPROCS(0) {
					wg.Go(func() {
						for p := range next {
							extractPlain(b, m, p, path.Join("plain", fmt.Sprint(n), string(p.Name)))
						}
					})
				}
				for _, p := range pkgs {
					next <- p
				}
				close(next)
				wg.Wait()
				cpu.stop()
			}
			reportFiles(b, &cpu)
		})
	}
}

func extractPlain(b *testing.B, m *machine, p *Package, dest string) {
	rc, err := m.open(p.Digest)
	if err != nil {
		b.Error(err)
		return
	}
	defer rc.Close()
	// A tag per extraction: a new package dir is staged beside it, in a
	// dir the others share.
	st, err := packages.Extract(rc, m.root, packages.ExtractOptions{Dest: dest, Tag: "bench-" + path.Base(dest)})
	if err == nil {
		err = st.Publish(m.root, nil)
	}
	if err != nil {
		b.Error(err)
	}
}

// cpuClock adds up the CPU time (user and system, all threads, and the
// children waited for, such as BenchmarkFloorZstdTar's zstd and tar) the
// process spends between start and stop: a figure that other load on a
// shared machine disturbs less than wall time.
type cpuClock struct{ total, begin time.Duration }

func cpuNow() time.Duration {
	var sum time.Duration
	for _, who := range []int{syscall.RUSAGE_SELF, syscall.RUSAGE_CHILDREN} {
		var ru syscall.Rusage
		if err := syscall.Getrusage(who, &ru); err == nil {
			sum += time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
		}
	}
	return sum
}

func (c *cpuClock) start() { c.begin = cpuNow() }
func (c *cpuClock) stop()  { c.total += cpuNow() - c.begin }

func reportFiles(b *testing.B, cpu *cpuClock) {
	files := float64(b.N * benchPackages * benchFiles)
	b.ReportMetric(files/b.Elapsed().Seconds(), "files/s")
	b.ReportMetric(cpu.total.Seconds()/float64(b.N), "cpu-s/op")
}
