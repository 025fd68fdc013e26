package packages

import (
	"archive/tar"
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
)

// TestHostileArchives feeds archives that break one rule each to Inspect and
// to Extract. Each must be refused with an error naming the entry at fault,
// for the reason of that rule (so that the test fails if the rule is
// removed, even when a later rule would also refuse the archive), and
// Extract must leave the file system, inside and outside the root, exactly
// as it was.
func TestHostileArchives(t *testing.T) {
	m := manifestTE("")
	body := "#!/bin/sh\n"
	tests := []struct {
		name     string
		archive  func(t *testing.T) []byte
		lim      Limits
		wantPath string
		want     string
		wantErr  error // errors.Is target, when set
	}{
		{name: "dotdot", wantPath: "data/../../outside/victim", want: `contains ".."`,
			archive: entries(m, fileTE("data/../../outside/victim", "pwned"))},
		{name: "dotdot at the top", wantPath: "../outside/victim", want: `contains ".."`,
			archive: entries(m, fileTE("../outside/victim", "pwned"))},
		{name: "absolute", wantPath: "/outside/victim", want: "absolute name",
			archive: entries(m, fileTE("/outside/victim", "pwned"))},
		{name: "unclean", wantPath: "data/./bin//x", want: "not clean",
			archive: entries(m, fileTE("data/./bin//x", body))},
		{name: "symlink outside then write through it", wantPath: "data/lnk", want: "leaves the package directory",
			archive: entries(m, symlinkTE("data/lnk", "../../../../../outside"), fileTE("data/lnk/victim", "pwned"))},
		{name: "absolute symlink then write through it", wantPath: "data/lnk", want: "is absolute",
			archive: entries(m, symlinkTE("data/lnk", "/"), fileTE("data/lnk/victim", "pwned"))},
		{name: "entry below a symlink", wantPath: "data/lnk/f", want: `is below "data/lnk", which is a symlink`,
			archive: entries(m, dirTE("data/sub"), symlinkTE("data/lnk", "sub"), fileTE("data/lnk/f", body))},
		{name: "entry below a file", wantPath: "data/f/g", want: `is below "data/f", which is a file`,
			archive: entries(m, fileTE("data/f", body), fileTE("data/f/g", body))},
		{name: "hard link outside the archive", wantPath: "data/h", want: `hard link target "/outside/victim": absolute name`,
			archive: entries(m, te{name: "data/h", typ: tar.TypeLink, link: "/outside/victim"})},
		{name: "hard link to a path not in the archive", wantPath: "data/h", want: "not an earlier regular file",
			archive: entries(m, te{name: "data/h", typ: tar.TypeLink, link: "data/etc/shadow"})},
		{name: "hard link to a later entry", wantPath: "data/h", want: "not an earlier regular file",
			archive: entries(m, te{name: "data/h", typ: tar.TypeLink, link: "data/later"}, fileTE("data/later", body))},
		{name: "hard link to a directory", wantPath: "data/h", want: "not an earlier regular file",
			archive: entries(m, dirTE("data/d"), te{name: "data/h", typ: tar.TypeLink, link: "data/d"})},
		{name: "character device", wantPath: "data/null", want: "device nodes are not allowed",
			archive: entries(m, te{name: "data/null", typ: tar.TypeChar})},
		{name: "block device", wantPath: "data/sda", want: "device nodes are not allowed",
			archive: entries(m, te{name: "data/sda", typ: tar.TypeBlock})},
		{name: "fifo", wantPath: "data/pipe", want: "FIFOs are not allowed",
			archive: entries(m, te{name: "data/pipe", typ: tar.TypeFifo})},
		{name: "setuid without declaration", wantPath: "data/bin/su", want: "setuid/setgid bit set but the path is not declared",
			archive: entries(m, te{name: "data/bin/su", mode: 0o4755, body: body})},
		{name: "setgid without declaration", wantPath: "data/bin/sg", want: "setuid/setgid bit set but the path is not declared",
			archive: entries(m, te{name: "data/bin/sg", mode: 0o2755, body: body})},
		{name: "hard link to a setuid file", wantPath: "data/bin/alias", want: "not declared in the manifest's [Files] setuid",
			archive: entries(manifestTE("[Files]\nsetuid = [\"data/bin/su\"]\n"),
				te{name: "data/bin/su", mode: 0o4755, body: body}, te{name: "data/bin/alias", typ: tar.TypeLink, link: "data/bin/su"})},
		{name: "duplicate file", wantPath: "data/a", want: "duplicate entry",
			archive: entries(m, fileTE("data/a", "one"), fileTE("data/a", "two"))},
		{name: "file over an implicit directory", wantPath: "data/d", want: "earlier entries are inside it",
			archive: entries(m, fileTE("data/d/f", body), fileTE("data/d", body))},
		{name: "control character", wantPath: "data/a\x1b[2Jb", want: "control or bidirectional",
			archive: entries(m, fileTE("data/a\x1b[2Jb", body))},
		{name: "bidi override", wantPath: "data/invoice\u202efdp.exe", want: "control or bidirectional",
			archive: entries(m, fileTE("data/invoice\u202efdp.exe", body))},
		{name: "invalid utf-8", wantPath: "data/\xff\xfe", want: "not valid UTF-8",
			archive: entries(m, fileTE("data/\xff\xfe", body))},
		{name: "reserved temporary name", wantPath: "data/.pk-tx1-1", want: "reserved for temporary files",
			archive: entries(m, fileTE("data/.pk-tx1-1", body))},
		{name: "long name", wantPath: "data/" + strings.Repeat("a", 300), want: "longer than 255",
			archive: entries(m, fileTE("data/"+strings.Repeat("a", 300), body))},
		{name: "unknown top-level entry", wantPath: "etc/passwd", want: "not allowed at the top",
			archive: entries(m, fileTE("etc/passwd", body))},
		{name: "sparse file", wantPath: "data/sparse", want: "sparse files are not allowed",
			archive: func(t *testing.T) []byte {
				// 5 stored bytes that read as a 1 GB file; archive/tar cannot write this.
				b := rawTar(t, []te{m}, false)
				b = append(b, paxHeader(t, "GNU.sparse.major=0\nGNU.sparse.minor=1\nGNU.sparse.size=1000000000\nGNU.sparse.numblocks=1\nGNU.sparse.map=0,5\n")...)
				return compress(t, append(b, rawTar(t, []te{fileTE("data/sparse", "12345")}, true)...))
			}},
		{name: "zstd bomb", lim: Limits{MaxTotalSize: 64 << 10}, want: "zstd bomb", wantErr: ErrTooLarge,
			archive: func(t *testing.T) []byte {
				// A valid archive followed by 4 MiB of zeros: 4 MiB from 1 KiB.
				tarball := append(rawTar(t, []te{m, fileTE("data/a", body)}, true), make([]byte, 4<<20)...)
				b := compress(t, tarball)
				if len(b) > 1<<10 {
					t.Fatalf("the bomb is %d bytes", len(b))
				}
				return b
			}},
		{name: "oversize file", lim: Limits{MaxFileSize: 1 << 10}, wantPath: "data/big", want: "larger than the 1024 allowed for one file", wantErr: ErrTooLarge,
			archive: entries(m, fileTE("data/big", strings.Repeat("x", 2<<10)))},
		{name: "oversize total", lim: Limits{MaxTotalSize: 8 << 10}, wantPath: "data/b", want: "files add up to more than", wantErr: ErrTooLarge,
			archive: entries(m, fileTE("data/a", strings.Repeat("x", 4<<10)), fileTE("data/b", strings.Repeat("x", 5<<10)))},
		{name: "too many entries", lim: Limits{MaxEntries: 3}, wantPath: "data/c", want: "more than 3 entries", wantErr: ErrTooLarge,
			archive: entries(m, fileTE("data/a", body), fileTE("data/b", body), fileTE("data/c", body))},
		{name: "zstd window too large", lim: Limits{MaxWindow: 1 << 20}, want: "zstd window larger than the 1048576 bytes allowed", wantErr: zstd.ErrWindowSizeExceeded,
			archive: func(t *testing.T) []byte {
				tarball := rawTar(t, []te{m, fileTE("data/a", string(make([]byte, 2<<20)))}, true)
				return compress(t, tarball, zstd.WithWindowSize(8<<20))
			}},
		{name: "oversized manifest", wantPath: ManifestFile, want: "larger than the 65536 allowed", wantErr: ErrTooLarge,
			archive: entries(fileTE(ManifestFile, testManifest("#"+strings.Repeat("x", MaxManifestSize))))},
		{name: "invalid manifest", wantPath: ManifestFile, want: "Info.serial",
			archive: entries(fileTE(ManifestFile, "[Info]\nname = \"demo\"\n"))},
		{name: "manifest not first", wantPath: "data", want: "the first entry of an archive must be manifest.toml",
			archive: entries(dirTE("data"), m)},
		{name: "manifest twice", wantPath: ManifestFile, want: "duplicate entry",
			archive: entries(m, m)},
		{name: "manifest not a file", wantPath: ManifestFile, want: "must be a regular file",
			archive: entries(symlinkTE(ManifestFile, "data/m"))},
		{name: "missing declared hook", wantPath: InstallHook, want: "declared in the manifest's [Hooks] but missing",
			archive: entries(manifestTE("[Hooks]\ninstall = \"install.lua\"\n"), fileTE("data/a", body))},
		{name: "undeclared hook", wantPath: RemoveHook, want: "not declared in the manifest's [Hooks]",
			archive: entries(m, fileTE(RemoveHook, "os.remove('/')"))},
		{name: "oversize hook", wantPath: InstallHook, want: "larger than the 1048576 allowed",
			archive: entries(manifestTE("[Hooks]\ninstall = \"install.lua\"\n"), fileTE(InstallHook, strings.Repeat("-", MaxHookSize+1)))},
		{name: "declared config missing", wantPath: "data/etc/app.conf", want: "[Files] config but not a regular file",
			archive: entries(manifestTE("[Files]\nconfig = [\"data/etc/app.conf\"]\n"), dirTE("data/etc"))},
		{name: "declared config is a symlink", wantPath: "data/etc/app.conf", want: "declared in the manifest's [Files] but a symlink",
			archive: entries(manifestTE("[Files]\nconfig = [\"data/etc/app.conf\"]\n"), symlinkTE("data/etc/app.conf", "x"))},
		{name: "sticky regular file", wantPath: "data/f", want: "sticky bit is only allowed on directories",
			archive: entries(m, te{name: "data/f", mode: 0o1644, body: body})},
		{name: "setgid directory", wantPath: "data/d", want: "setuid/setgid directories",
			archive: entries(m, te{name: "data/d/", typ: tar.TypeDir, mode: 0o2775})},
		{name: "truncated archive", want: "truncated archive", wantErr: io.ErrUnexpectedEOF,
			archive: func(t *testing.T) []byte {
				a := hostile(t, m, fileTE("data/a", strings.Repeat("incompressible? no, but long enough ", 4000)))
				return a[:len(a)/2]
			}},
		{name: "truncated file inside complete zstd", wantPath: "data/a", want: "truncated archive", wantErr: io.ErrUnexpectedEOF,
			archive: func(t *testing.T) []byte {
				return compress(t, rawTar(t, []te{m, {name: "data/a", body: "short", size: 4096}}, false))
			}},
		{name: "no end-of-archive marker", want: `truncated after entry "data/b"`, wantErr: io.ErrUnexpectedEOF,
			archive: func(t *testing.T) []byte {
				return compress(t, rawTar(t, []te{m, fileTE("data/a", body), fileTE("data/b", body)}, false))
			}},
		{name: "garbage bytes", want: "not zstd data",
			archive: func(*testing.T) []byte { return []byte("this is not an archive at all, just garbage bytes") }},
		{name: "garbage after the zstd stream", want: "after the end of the tar archive",
			archive: func(t *testing.T) []byte { return append(hostile(t, m), "GARBAGE!"...) }},
		{name: "garbage after the tar end", want: "garbage after the end of the tar archive",
			archive: func(t *testing.T) []byte {
				return compress(t, append(rawTar(t, []te{m}, true), "hidden payload"...))
			}},
		{name: "data is a symlink", wantPath: "data", want: "must be a directory, not a symlink",
			archive: entries(m, symlinkTE("data", "."))},
		{name: "hook is a directory", wantPath: InstallHook, want: "must be a regular file, not a dir",
			archive: entries(manifestTE("[Hooks]\ninstall = \"install.lua\"\n"), dirTE(InstallHook))},
		{name: "global pax header", wantPath: "pax_global_header", want: "entry type 'g' is not allowed",
			archive: entries(m, te{name: "pax_global_header", typ: tar.TypeXGlobalHeader, pax: map[string]string{"comment": "x"}})},
		{name: "empty", want: "empty archive",
			archive: func(t *testing.T) []byte { return compress(t, nil) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			archive := tt.archive(t)
			check := func(err error) {
				t.Helper()
				wantEntryError(t, err, tt.wantPath, tt.want)
				if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
					t.Errorf("error %v does not wrap %v", err, tt.wantErr)
				}
			}
			if _, err := Inspect(bytes.NewReader(archive), tt.lim); true {
				check(err)
			}
			sb := newSandbox(t)
			before := snapshot(t, sb.outer)
			st, err := sb.extract(archive, tt.lim)
			if st != nil {
				t.Errorf("Extract returned a Staged with its error")
			}
			check(err)
			wantUnchanged(t, before, snapshot(t, sb.outer))
		})
	}
}

// entries returns an archive builder for the table.
func entries(es ...te) func(t *testing.T) []byte {
	return func(t *testing.T) []byte { return hostile(t, es...) }
}

// TestInspectStreamVariants: what tar and zstd tools legitimately produce
// beyond what Build writes is accepted: several zstd frames, and zero
// padding after the tar end-of-archive marker (tar's 10 KiB records).
func TestInspectStreamVariants(t *testing.T) {
	m := manifestTE("")
	files := []te{m, dirTE("data"), fileTE("data/a", "a"), fileTE("data/b", "b")}
	whole := rawTar(t, files, true)
	tests := []struct {
		name    string
		archive []byte
	}{
		{"two zstd frames", append(compress(t, rawTar(t, files[:2], false)), compress(t, rawTar(t, files[2:], true))...)},
		{"frame per entry", func() []byte {
			var b []byte
			for i, e := range files {
				b = append(b, compress(t, rawTar(t, []te{e}, i == len(files)-1))...)
			}
			return b
		}()},
		{"record padding", compress(t, append(whole, make([]byte, 10240-len(whole)%10240)...))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Inspect(bytes.NewReader(tt.archive), Limits{})
			if err != nil {
				t.Fatal(err)
			}
			if len(c.Entries) != 2 {
				t.Errorf("entries: %+v", c.Entries)
			}
		})
	}
}
