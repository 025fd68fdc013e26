package packages

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/klauspost/compress/zstd"
)

// testManifest is a valid manifest; extra is appended (e.g. "[Hooks]...").
func testManifest(extra string) string {
	return `[Info]
name = "demo"
version = "1.0.0"
family = "1f84ca15-5077-4f1d-a370-0ec860766eb2"
serial = 1
` + extra
}

// te is one hand-made tar entry for hostile archives.
type te struct {
	name string
	typ  byte // tar.TypeReg when 0
	mode int64
	body string
	link string
	size int64 // header size when > 0 (else len(body)); a mismatch makes a broken archive
	pax  map[string]string
}

func manifestTE(extra string) te { return te{name: ManifestFile, body: testManifest(extra)} }

func fileTE(name, body string) te { return te{name: name, body: body} }

func dirTE(name string) te { return te{name: name + "/", typ: tar.TypeDir, mode: 0o755} }

func symlinkTE(name, target string) te { return te{name: name, typ: tar.TypeSymlink, link: target} }

// rawTar writes entries as a tar stream, without any validation; close
// false leaves out the end-of-archive marker, so that streams can be
// concatenated.
func rawTar(t testing.TB, entries []te, close bool) []byte {
	t.Helper()
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, e := range entries {
		hdr := &tar.Header{Name: e.name, Typeflag: e.typ, Mode: e.mode, Linkname: e.link, Size: int64(len(e.body)), PAXRecords: e.pax}
		if hdr.Typeflag == 0 {
			hdr.Typeflag = tar.TypeReg
		}
		if hdr.Mode == 0 && hdr.Typeflag != tar.TypeXGlobalHeader {
			hdr.Mode = 0o644
		}
		if e.size > 0 {
			hdr.Size = e.size
		}
		if hdr.Typeflag != tar.TypeReg {
			hdr.Size = 0
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatalf("tar header %q: %v", e.name, err)
		}
		if _, err := tw.Write([]byte(e.body)); err != nil && e.size == 0 {
			t.Fatalf("tar body %q: %v", e.name, err)
		}
	}
	// Flush pads the last entry; Close also writes the end-of-archive
	// marker. Both fail after a short body (size > len(body)), which is
	// then what the test wants.
	if close {
		_ = tw.Close()
	} else {
		_ = tw.Flush()
	}
	return b.Bytes()
}

// paxHeader makes a raw PAX extended header ('x') holding records, each
// "key=value\n", for the entry that follows it. archive/tar refuses to
// write some records (GNU sparse maps), which hostile archives need.
func paxHeader(t testing.TB, records string) []byte {
	return metaHeader(t, tar.TypeXHeader, records)
}

// metaHeader makes a raw header of type typ ('x', 'g', 'L', 'K') whose
// data is records, each "key=value\n", in pax's "<len> key=value\n" form
// (len counting itself), written whatever they hold.
func metaHeader(t testing.TB, typ byte, records string) []byte {
	t.Helper()
	var body []byte
	for rec := range strings.SplitSeq(strings.TrimSuffix(records, "\n"), "\n") {
		n := len(rec) + 3
		for len(fmt.Sprint(n))+len(rec)+2 != n {
			n++
		}
		body = fmt.Appendf(body, "%d %s\n", n, rec)
	}
	blk := rawTar(t, []te{{name: "PaxHeaders/x", body: string(body)}}, false)
	blk[offType] = typ
	fixSum(blk)
	return blk
}

// fixSum rewrites the checksum of the header block at b[0:512].
func fixSum(b []byte) {
	copy(b[offChksum:offChksum+lenChksum], "        ")
	var sum int
	for _, c := range b[:blockSize] {
		sum += int(c)
	}
	copy(b[offChksum:], fmt.Sprintf("%06o\x00 ", sum))
}

// compress zstd-compresses b.
func compress(t testing.TB, b []byte, opts ...zstd.EOption) []byte {
	t.Helper()
	var out bytes.Buffer
	zw, err := zstd.NewWriter(&out, opts...)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := zw.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

// hostile builds a complete .tar.zst from hand-made entries.
func hostile(t testing.TB, entries ...te) []byte {
	t.Helper()
	return compress(t, rawTar(t, entries, true))
}

// snapshot describes every file below dir: type, mode, content hash or
// link target. It is how tests see that nothing appeared anywhere.
func snapshot(t testing.TB, dir string) map[string]string {
	t.Helper()
	snap := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		desc := fi.Mode().String()
		switch {
		case fi.Mode().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			sum := sha256.Sum256(b)
			desc += " " + hex.EncodeToString(sum[:6])
			if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Nlink > 1 {
				desc += fmt.Sprintf(" links=%d", st.Nlink)
			}
		case fi.Mode()&fs.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			desc += " -> " + target
		}
		snap[filepath.ToSlash(rel)] = desc
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return snap
}

// sandbox is a temporary directory holding a root to extract into and,
// beside it, a directory an escaping archive would reach.
type sandbox struct {
	outer string
	root  *os.Root
}

func newSandbox(t testing.TB) *sandbox {
	t.Helper()
	outer := t.TempDir()
	for _, d := range []string{"root/opt/packets", "outside"} {
		if err := os.MkdirAll(filepath.Join(outer, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(outer, "outside", "victim"), []byte("untouched"), 0o644); err != nil {
		t.Fatal(err)
	}
	root, err := os.OpenRoot(filepath.Join(outer, "root"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { root.Close() })
	return &sandbox{outer: outer, root: root}
}

const testDest = "opt/packets/demo/data"

func (s *sandbox) extract(archive []byte, lim Limits) (*Staged, error) {
	return Extract(bytes.NewReader(archive), s.root, ExtractOptions{Limits: lim, Dest: testDest, Tag: "tx1"})
}

// wantEntryError checks that err is an *EntryError naming path, whose
// message contains reason.
func wantEntryError(t testing.TB, err error, path, reason string) {
	t.Helper()
	var ee *EntryError
	if !errors.As(err, &ee) {
		t.Fatalf("got error %v (%T), want an *EntryError naming %q", err, err, path)
	}
	if ee.Path != path || !strings.Contains(ee.Reason, reason) {
		t.Fatalf("got %v\nwant entry %q with a reason containing %q", err, path, reason)
	}
}

// wantUnchanged fails when the directory tree differs from before.
func wantUnchanged(t testing.TB, before, after map[string]string) {
	t.Helper()
	if diff := cmp.Diff(before, after); diff != "" {
		t.Errorf("the file system changed (-before +after):\n%s", diff)
	}
}
