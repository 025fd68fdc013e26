package index

import (
	"archive/tar"
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"aead.dev/minisign"
	"github.com/google/uuid"
	"github.com/klauspost/compress/zstd"

	"github.com/packets-dev/packets/packages"
)

// BenchmarkBuildRepo indexes a repository of 2,000 archives: "cold" reads
// and validates every archive, "warm" re-indexes it unchanged (hash, reuse).
//
//	go test -run '^$' -bench BuildRepo -benchtime 3x ./packages/index
func BenchmarkBuildRepo(b *testing.B) {
	const n = 2000
	dir := b.TempDir()
	writeBenchArchives(b, dir, n)
	_, key, err := minisign.GenerateKey(nil)
	if err != nil {
		b.Fatal(err)
	}
	opt := BuildOptions{Dir: dir, Key: key, Now: func() time.Time { return t0 }}
	reset := func() {
		for _, pattern := range []string{ReleaseFile, SignatureFile, "index-*.db"} {
			ms, _ := filepath.Glob(filepath.Join(dir, pattern))
			for _, m := range ms {
				os.Remove(m)
			}
		}
	}
	b.Run("cold", func(b *testing.B) {
		for b.Loop() {
			b.StopTimer()
			reset()
			b.StartTimer()
			if _, stats, err := BuildRepoStats(b.Context(), opt); err != nil || stats.Reused != 0 {
				b.Fatal(err, stats)
			}
		}
	})
	b.Run("warm", func(b *testing.B) {
		reset()
		if _, err := BuildRepo(b.Context(), opt); err != nil {
			b.Fatal(err)
		}
		for b.Loop() {
			if _, stats, err := BuildRepoStats(b.Context(), opt); err != nil || stats.Reused != n {
				b.Fatal(err, stats)
			}
		}
	})
}

// BenchmarkSearchFile searches an index of 20,000 packages and 1,000,000
// files, whose rows are generated directly.
//
//	go test -run '^$' -bench SearchFile ./packages/index
func BenchmarkSearchFile(b *testing.B) {
	const pkgs, perPkg = 20000, 50
	p := filepath.Join(b.TempDir(), "index.db")
	start := time.Now()
	writeBigIndex(b, p, pkgs, perPkg)
	fi, _ := os.Stat(p)
	b.Logf("generated %d packages, %d files in %s: %d MB", pkgs, pkgs*perPkg, time.Since(start).Round(time.Millisecond), fi.Size()>>20)
	ix, err := Open(p)
	if err != nil {
		b.Fatal(err)
	}
	defer ix.Close()
	for _, bc := range []struct {
		name, suffix string
		want         int
	}{
		{"file", "bin/pkg12345", 1},
		{"basename", "pkg12345.1", 1},
		{"installed-path", "/opt/packets/pkg12345/data/share/pkg12345/file-07.dat", 1},
		{"package-dir", "pkg12345/data/lib/libpkg12345.so.1", 1},
		{"miss", "sbin/nothing", 0},
		{"common-20000", "README", pkgs},
	} {
		b.Run(bc.name, func(b *testing.B) {
			for b.Loop() {
				got, err := ix.SearchFile(b.Context(), bc.suffix)
				if err != nil || len(got) != bc.want {
					b.Fatalf("%d matches, %v; want %d", len(got), err, bc.want)
				}
			}
		})
	}
	b.Run("search-name", func(b *testing.B) {
		for b.Loop() {
			if got, err := ix.Search(b.Context(), "pkg1234"); err != nil || len(got) != 10 {
				b.Fatalf("%d matches, %v", len(got), err)
			}
		}
	})
}

// writeBigIndex writes an index of pkgs packages with perPkg files each.
func writeBigIndex(b *testing.B, p string, pkgs, perPkg int) {
	w, err := createIndexDB(b.Context(), p)
	if err != nil {
		b.Fatal(err)
	}
	for i := range pkgs {
		name := fmt.Sprintf("pkg%05d", i)
		row := &pkgRow{Available: packages.Available{
			Manifest: packages.Manifest{Name: packages.Name(name), Version: "1.0", Description: "package number " + name,
				Family: packages.Family(uuid.NewSHA1(uuid.NameSpaceOID, []byte(name)).String()), Serial: 1},
			Filename: "packages/" + name + ".tar.zst", Digest: packages.SumBytes([]byte(name)), Size: 1000, InstalledSize: 5000,
		}}
		row.files = append(row.files, "bin/"+name, "lib/lib"+name+".so.1", "share/man/man1/"+name+".1", "share/doc/"+name+"/README")
		for k := len(row.files); k < perPkg; k++ {
			row.files = append(row.files, fmt.Sprintf("share/%s/file-%02d.dat", name, k))
		}
		if err := w.add(b.Context(), int64(i+1), row); err != nil {
			b.Fatal(err)
		}
	}
	if err := w.finish(b.Context(), Release{Repo: "bench", Version: 1, Issued: t0, Expires: t0.Add(time.Hour)}); err != nil {
		b.Fatal(err)
	}
}

// writeBenchArchives writes n small valid archives into dir/packages. It
// writes the tar.zst itself with one reused fast encoder: packages.Build
// takes ~20 ms an archive (a fresh high-level encoder each), which would
// make the setup dominate. BuildRepo validates them like any other.
func writeBenchArchives(b *testing.B, dir string, n int) {
	pdir := filepath.Join(dir, PackagesDir)
	if err := os.MkdirAll(pdir, 0o755); err != nil {
		b.Fatal(err)
	}
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1))
	if err != nil {
		b.Fatal(err)
	}
	defer enc.Close()
	for i := range n {
		name := fmt.Sprintf("pkg%05d", i)
		var out bytes.Buffer
		enc.Reset(&out)
		tw := tar.NewWriter(enc)
		manifest := fmt.Sprintf("[Info]\nname = %q\nversion = \"1.0\"\ndescription = \"benchmark package\"\nfamily = %q\nserial = 1\n",
			name, uuid.NewSHA1(uuid.NameSpaceOID, []byte(name)).String())
		files := []string{"bin/" + name, "lib/lib" + name + ".so.1", "share/doc/" + name + "/README"}
		for k := range 17 {
			files = append(files, fmt.Sprintf("share/%s/file-%02d.dat", name, k))
		}
		writeTarEntry(b, tw, "manifest.toml", tar.TypeReg, manifest)
		writeTarEntry(b, tw, "data", tar.TypeDir, "")
		for _, d := range []string{"bin", "lib", "share", "share/doc", "share/doc/" + name, "share/" + name} {
			writeTarEntry(b, tw, "data/"+d, tar.TypeDir, "")
		}
		for _, f := range files {
			writeTarEntry(b, tw, "data/"+f, tar.TypeReg, strings.Repeat(name, 64))
		}
		if err := tw.Close(); err != nil {
			b.Fatal(err)
		}
		if err := enc.Close(); err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(pdir, name+ArchiveSuffix), out.Bytes(), 0o644); err != nil {
			b.Fatal(err)
		}
	}
}

func writeTarEntry(b *testing.B, tw *tar.Writer, name string, typ byte, content string) {
	hdr := &tar.Header{Name: name, Typeflag: typ, Mode: 0o644, Size: int64(len(content)), ModTime: time.Unix(0, 0), Format: tar.FormatPAX}
	if typ == tar.TypeDir {
		hdr.Mode, hdr.Size = 0o755, 0
	}
	if err := tw.WriteHeader(hdr); err != nil {
		b.Fatal(err)
	}
	if _, err := tw.Write([]byte(content)); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkSyncLarge syncs an index of 20,000 packages and 1,000,000 files
// from a loopback mirror into a fresh state directory: download, hash,
// quick_check, rename.
//
//	go test -run '^$' -bench SyncLarge -benchtime 3x ./packages/index
func BenchmarkSyncLarge(b *testing.B) {
	dir := b.TempDir()
	p := filepath.Join(dir, IndexFileName(1))
	writeBigIndex(b, p, 20000, 50)
	d, n, err := syncAndHash(p)
	if err != nil {
		b.Fatal(err)
	}
	pub, key, err := minisign.GenerateKey(nil)
	if err != nil {
		b.Fatal(err)
	}
	rel := Release{Repo: "bench", Version: 1, Issued: t0, Expires: t0.Add(time.Hour), Index: IndexRef{File: IndexFileName(1), Size: n, SHA256: d}}
	data := rel.Encode()
	if err := os.WriteFile(filepath.Join(dir, ReleaseFile), data, 0o644); err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, SignatureFile), SignRelease(key, data, rel), 0o644); err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewServer(http.FileServer(http.Dir(dir)))
	defer srv.Close()
	b.SetBytes(n)
	for b.Loop() {
		res, err := Sync(b.Context(), SyncOptions{
			Get: httpGetter{srv.URL}, Keys: []minisign.PublicKey{pub}, StateDir: b.TempDir(),
			Now: func() time.Time { return t0 },
		})
		if err != nil || !res.Changed {
			b.Fatal(res, err)
		}
	}
}
