// Command corpus writes the benchmark suite's packages, deterministically:
// the same flags give the same bytes on every machine. Each package is
// written three times over the same files (hard links), as a packets source
// directory, as a dpkg-deb tree and as a pacman tree, so that every package
// manager installs identical payloads to identical paths
// (/opt/packets/NAME/data/...).
//
//	corpus -out DIR [-packages 200] [-files 30000] [-mb 170] [-binaries 4] [-binary-mb 20] [-upgrades 20] [-hooks]
//	       [-deps 0] [-formats packets,deb,pacman] [-state-every N -state FILE -testsolv FILE]
//
// writes DIR/packets/NAME-SERIAL, DIR/deb/NAME-SERIAL and
// DIR/pacman/NAME-SERIAL. With -deps D, package i depends on about D of
// the packages before it, the popular low-numbered ones most (as libraries
// are in Debian), half of them with a ">= 1.0" constraint. -state writes a
// state file declaring every Nth package, and -testsolv a libsolv testcase
// of the same universe and the same install job, for testsolv. Most files are a few KB of text; a few packages
// carry one large binary-like file (part random, part text, so it
// compresses as a real binary does). With -upgrades N, every
// (packages/N)th package also gets a serial 2 that changes a tenth of its
// files. With -hooks, every package has install.lua and remove.lua hooks
// that place and remove a command in the bin dir.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"log"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

type config struct {
	out                     string
	prefix                  string
	packages, files         int
	smallMB                 int
	binaries, binaryMB      int
	upgrades                int
	hooks                   bool
	deps                    float64
	formats                 map[string]bool
	stateEvery              int
	stateFile, testsolvFile string
	filesPerDir, vocabulary int
}

func main() {
	var c config
	flag.StringVar(&c.out, "out", "", "write the corpus under `DIR` (must not exist)")
	flag.StringVar(&c.prefix, "prefix", "p", "package names are PREFIX000, PREFIX001, ...")
	flag.IntVar(&c.packages, "packages", 200, "number of packages")
	flag.IntVar(&c.files, "files", 30000, "number of small files, spread evenly over the packages")
	flag.IntVar(&c.smallMB, "mb", 170, "total size of the small files, in MB")
	flag.IntVar(&c.binaries, "binaries", 4, "number of packages that carry one large binary")
	flag.IntVar(&c.binaryMB, "binary-mb", 20, "size of each large binary, in MB")
	flag.IntVar(&c.upgrades, "upgrades", 0, "number of packages that also get a serial 2")
	flag.BoolVar(&c.hooks, "hooks", false, "give every package install and remove hooks")
	flag.Float64Var(&c.deps, "deps", 0, "average number of dependencies per package")
	formats := flag.String("formats", "packets,deb,pacman", "which of packets, deb and pacman to write")
	flag.IntVar(&c.stateEvery, "state-every", 0, "the state declares every `N`th package")
	flag.StringVar(&c.stateFile, "state", "", "write the state file (with -state-every) to `FILE`")
	flag.StringVar(&c.testsolvFile, "testsolv", "", "write a libsolv testcase of the universe and the state's install job to `FILE`")
	flag.Parse()
	c.formats = map[string]bool{}
	for f := range strings.SplitSeq(*formats, ",") {
		c.formats[f] = true
	}
	if c.out == "" || c.packages <= 0 || c.files < 0 {
		flag.Usage()
		os.Exit(2)
	}
	c.filesPerDir, c.vocabulary = 20, 4096
	if err := run(c); err != nil {
		log.Fatalf("corpus: %v", err)
	}
}

func run(c config) error {
	if _, err := os.Stat(c.out); err == nil {
		return fmt.Errorf("%s exists", c.out)
	}
	words := vocabulary(c.vocabulary)
	every := 0
	if c.upgrades > 0 {
		every = max(1, c.packages/c.upgrades)
	}
	for i := range c.packages {
		p := pkg{c: &c, i: i, words: words}
		if err := p.write(1); err != nil {
			return err
		}
		if every > 0 && i%every == 0 && i/every < c.upgrades {
			if err := p.write(2); err != nil {
				return err
			}
		}
	}
	if c.stateEvery > 0 && c.stateFile != "" {
		if err := writeState(&c); err != nil {
			return err
		}
	}
	if c.stateEvery > 0 && c.testsolvFile != "" {
		return writeTestsolv(&c)
	}
	return nil
}

// dep is one dependency of a package.
type dep struct {
	on      int  // the package depended on
	atLeast bool // with ">= 1.0"
}

// depsOf returns package i's dependencies: about c.deps of the packages
// before it (so there is no cycle), low numbers most often.
func depsOf(c *config, i int) []dep {
	if c.deps <= 0 || i == 0 {
		return nil
	}
	rng := rand.New(rand.NewPCG(uint64(i), 7))
	n := rng.IntN(int(2*c.deps) + 1)
	seen := map[int]bool{}
	var ds []dep
	for range n {
		u := rng.Float64()
		j := int(float64(i) * u * u * u)
		if seen[j] {
			continue
		}
		seen[j] = true
		ds = append(ds, dep{on: j, atLeast: rng.IntN(2) == 0})
	}
	return ds
}

func (c *config) name(i int) string { return fmt.Sprintf("%s%03d", c.prefix, i) }

func writeState(c *config) error {
	var b strings.Builder
	for i := 0; i < c.packages; i += c.stateEvery {
		fmt.Fprintf(&b, "package %q {}\n", c.name(i))
	}
	return os.WriteFile(c.stateFile, []byte(b.String()), 0o644)
}

// writeTestsolv writes the universe as one testtags repository and the
// state's packages as install jobs on an empty system.
func writeTestsolv(c *config) error {
	var b strings.Builder
	b.WriteString("repo system 0 testtags <inline>\nrepo available 0 testtags <inline>\n")
	for i := range c.packages {
		fmt.Fprintf(&b, "#>=Pkg: %s 1.0 1 noarch\n", c.name(i))
		for _, d := range depsOf(c, i) {
			if d.atLeast {
				fmt.Fprintf(&b, "#>=Req: %s >= 1.0\n", c.name(d.on))
			} else {
				fmt.Fprintf(&b, "#>=Req: %s\n", c.name(d.on))
			}
		}
	}
	b.WriteString("system x86_64 rpm system\n")
	for i := 0; i < c.packages; i += c.stateEvery {
		fmt.Fprintf(&b, "job install name %s\n", c.name(i))
	}
	return os.WriteFile(c.testsolvFile, []byte(b.String()), 0o644)
}

// vocabulary returns n pseudo-words of 2 to 11 letters.
func vocabulary(n int) []string {
	rng := rand.New(rand.NewPCG(1, 2))
	words := make([]string, n)
	for i := range words {
		b := make([]byte, 2+rng.IntN(10))
		for j := range b {
			b[j] = 'a' + byte(rng.IntN(26))
		}
		words[i] = string(b)
	}
	return words
}

type pkg struct {
	c     *config
	i     int
	words []string
}

func (p pkg) name() string { return p.c.name(p.i) }

// write writes serial s of the package in the three formats.
func (p pkg) write(serial int) error {
	name := p.name()
	id := fmt.Sprintf("%s-%d", name, serial)
	src := filepath.Join(p.c.out, "packets", id)
	data := filepath.Join(src, "data")
	size, err := p.writeData(data, serial)
	if err != nil {
		return err
	}
	version := fmt.Sprintf("%d.0", serial)
	ds := depsOf(p.c, p.i)
	var pdeps, debDeps, pacDeps []string
	for _, d := range ds {
		n := p.c.name(d.on)
		if d.atLeast {
			pdeps, debDeps, pacDeps = append(pdeps, strconv.Quote(n+" >= 1.0")), append(debDeps, n+" (>= 1.0)"), append(pacDeps, "depend = "+n+">=1.0\n")
		} else {
			pdeps, debDeps, pacDeps = append(pdeps, strconv.Quote(n)), append(debDeps, n), append(pacDeps, "depend = "+n+"\n")
		}
	}
	manifest := fmt.Sprintf("[Info]\nname = %q\nversion = %q\ndescription = \"benchmark package %d\"\nauthor = \"packets bench\"\nfamily = \"00000000-0000-4000-8000-%012d\"\nserial = %d\ndependencies = [%s]\n",
		name, version, p.i, p.i+1, serial, strings.Join(pdeps, ", "))
	if p.c.hooks {
		manifest += "\n[Hooks]\ninstall = \"install.lua\"\nremove = \"remove.lua\"\n"
		install := fmt.Sprintf("local ok, err = os.copy(path_join(data_dir, \"bin/%[1]s\"), path_join(packets_bin_dir, \"%[1]s\"))\nif not ok then error(err) end\n", name)
		remove := fmt.Sprintf("os.remove(path_join(packets_bin_dir, %q))\n", name)
		if err := writeFiles(src, map[string]string{"install.lua": install, "remove.lua": remove}); err != nil {
			return err
		}
	}
	if err := writeFiles(src, map[string]string{"manifest.toml": manifest}); err != nil {
		return err
	}

	kb := (size + 1023) / 1024
	if p.c.formats["deb"] {
		deb := filepath.Join(p.c.out, "deb", id)
		control := fmt.Sprintf("Package: %s\nVersion: %s\nArchitecture: all\nMaintainer: packets bench <bench@example.invalid>\nInstalled-Size: %d\nDescription: benchmark package %d\n", name, version, kb, p.i)
		if len(debDeps) > 0 {
			control += "Depends: " + strings.Join(debDeps, ", ") + "\n"
		}
		if err := writeFiles(deb, map[string]string{"DEBIAN/control": control}); err != nil {
			return err
		}
		if err := linkTree(data, filepath.Join(deb, "opt/packets", name, "data")); err != nil {
			return err
		}
	}
	if p.c.formats["pacman"] {
		pac := filepath.Join(p.c.out, "pacman", id)
		pkginfo := fmt.Sprintf("pkgname = %s\npkgbase = %s\npkgver = %s-1\npkgdesc = benchmark package %d\nurl = https://example.invalid\nbuilddate = 0\npackager = packets bench\nsize = %d\narch = any\n%s", name, name, version, p.i, size, strings.Join(pacDeps, ""))
		if err := writeFiles(pac, map[string]string{".PKGINFO": pkginfo}); err != nil {
			return err
		}
		if err := linkTree(data, filepath.Join(pac, "opt/packets", name, "data")); err != nil {
			return err
		}
	}
	return nil
}

// writeData writes the package's files under dir and returns their total
// size. Serial 2 rewrites every tenth file; the rest are byte-identical.
func (p pkg) writeData(dir string, serial int) (int64, error) {
	c := p.c
	n := c.files / c.packages
	if p.i < c.files%c.packages {
		n++
	}
	avg := int64(c.smallMB) * 1_000_000 / int64(max(1, c.files))
	var total int64
	for j := range n {
		seed := uint64(p.i)<<32 | uint64(j)
		if serial > 1 && j%10 == 0 {
			seed |= uint64(serial) << 60
		}
		rng := rand.New(rand.NewPCG(seed, 3))
		size := avg/4 + rng.Int64N(avg*3/2+1) // mean ≈ avg
		rel := fmt.Sprintf("share/%s/d%02d/f%04d.txt", p.name(), j/c.filesPerDir, j)
		if j == 0 {
			rel = "bin/" + p.name() // every package has a command; the hook places it
		}
		mode := os.FileMode(0o644)
		if j == 0 {
			mode = 0o755
		}
		if err := p.writeFile(filepath.Join(dir, rel), size, 0, mode, rng); err != nil {
			return 0, err
		}
		total += size
	}
	if c.binaries > 0 && p.i%max(1, c.packages/c.binaries) == 0 && p.i/max(1, c.packages/c.binaries) < c.binaries {
		size := int64(c.binaryMB) * 1_000_000
		rng := rand.New(rand.NewPCG(uint64(p.i), uint64(serial)))
		if err := p.writeFile(filepath.Join(dir, "lib", p.name()+".so"), size, 0.45, 0o755, rng); err != nil {
			return 0, err
		}
		total += size
	}
	return total, nil
}

// writeFile writes size bytes: lines of words, with a fraction of 4 KiB
// blocks of random bytes instead (a binary's incompressible parts).
func (p pkg) writeFile(path string, size int64, random float64, mode os.FileMode, rng *rand.Rand) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 64<<10)
	var block [4096]byte
	for left := size; left > 0; {
		chunk := block[:min(int64(len(block)), left)]
		if rng.Float64() < random {
			for k := range chunk {
				chunk[k] = byte(rng.Uint32())
			}
		} else {
			fillText(chunk, p.words, rng)
		}
		if _, err := w.Write(chunk); err != nil {
			f.Close()
			return err
		}
		left -= int64(len(chunk))
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// fillText fills b with words and line breaks.
func fillText(b []byte, words []string, rng *rand.Rand) {
	k := 0
	for k < len(b) {
		w := words[rng.IntN(len(words))]
		k += copy(b[k:], w)
		if k < len(b) {
			if rng.IntN(12) == 0 {
				b[k] = '\n'
			} else {
				b[k] = ' '
			}
			k++
		}
	}
}

func writeFiles(dir string, files map[string]string) error {
	for rel, content := range files {
		path := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// linkTree recreates the directory tree src at dst, hard-linking files.
func linkTree(src, dst string) error {
	return filepath.WalkDir(src, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		return os.Link(path, target)
	})
}
