package packages

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// tarOf writes entries with archive/tar in the given format (and its
// end-of-archive marker).
func tarOf(t testing.TB, format tar.Format, hdrs ...*tar.Header) []byte {
	t.Helper()
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, h := range hdrs {
		h.Format = format
		if h.Mode == 0 {
			h.Mode = 0o644
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatalf("header %q: %v", h.Name, err)
		}
		if h.Typeflag == tar.TypeReg {
			if _, err := tw.Write(bytes.Repeat([]byte{'x'}, int(h.Size))); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// tarEntry is what both readers must agree on for one entry.
type tarEntry struct {
	Typeflag byte
	Name     string
	Linkname string
	Mode     int64
	Size     int64
	Sparse   bool
	Data     string
}

func sparse(h *tar.Header) bool {
	for k := range h.PAXRecords {
		if strings.HasPrefix(k, "GNU.sparse.") {
			return true
		}
	}
	return h.Typeflag == tar.TypeGNUSparse
}

// readAllTar reads every entry of data with tarReader.
func readAllTar(data []byte) ([]tarEntry, error) {
	tr := &tarReader{r: bytes.NewReader(data)}
	var out []tarEntry
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			return out, err
		}
		out = append(out, tarEntry{h.Typeflag, h.Name, h.Linkname, h.Mode, h.Size, sparse(h), string(b)})
	}
}

// The formats archive/tar writes, and GNU tar's (its default), read as
// archive/tar reads them: ustar names split into a prefix, pax records
// for long names and links and for big sizes, GNU long names and links.
func TestTarReaderFormats(t *testing.T) {
	long := "data/" + strings.Repeat("d/", 60) + "file" // 129 bytes: a prefix and a name in ustar
	longer := "data/" + strings.Repeat("x", 200)        // no ustar split: pax path, or GNU 'L'
	target := strings.Repeat("../", 40) + "t"           // 121 bytes: pax linkpath, or GNU 'K'
	hdrs := func() []*tar.Header {
		return []*tar.Header{
			{Name: "data/", Typeflag: tar.TypeDir, Mode: 0o755},
			{Name: "data/a", Typeflag: tar.TypeReg, Size: 700, Mode: 0o4755},
			{Name: longer, Typeflag: tar.TypeReg, Size: 3},
			{Name: "data/l", Typeflag: tar.TypeSymlink, Linkname: target},
			{Name: "data/h", Typeflag: tar.TypeLink, Linkname: "data/a"},
			{Name: "data/empty", Typeflag: tar.TypeReg},
		}
	}
	want := []tarEntry{
		{tar.TypeDir, "data/", "", 0o755, 0, false, ""},
		{tar.TypeReg, "data/a", "", 0o4755, 700, false, strings.Repeat("x", 700)},
		{tar.TypeReg, longer, "", 0o644, 3, false, "xxx"},
		{tar.TypeSymlink, "data/l", target, 0o644, 0, false, ""},
		{tar.TypeLink, "data/h", "data/a", 0o644, 0, false, ""},
		{tar.TypeReg, "data/empty", "", 0o644, 0, false, ""},
	}
	for _, format := range []tar.Format{tar.FormatPAX, tar.FormatGNU} {
		t.Run(format.String(), func(t *testing.T) {
			got, err := readAllTar(tarOf(t, format, hdrs()...))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("entries (-want +got):\n%s", diff)
			}
		})
	}
	t.Run("ustar prefix", func(t *testing.T) {
		got, err := readAllTar(tarOf(t, tar.FormatUSTAR, &tar.Header{Name: long, Typeflag: tar.TypeReg, Size: 1}))
		if err != nil || len(got) != 1 || got[0].Name != long {
			t.Errorf("got %+v, %v; want one entry named %q", got, err, long)
		}
	})
}

// block is a one-entry archive, for the refusals below to break.
func block(t *testing.T) []byte {
	t.Helper()
	return tarOf(t, tar.FormatUSTAR, &tar.Header{Name: "data/f", Typeflag: tar.TypeReg, Size: 3})
}

// Every refusal is a tar.ErrHeader or io.ErrUnexpectedEOF, and each one
// happens for the reason its case breaks: the unbroken archive reads.
func TestTarReaderRefuses(t *testing.T) {
	if _, err := readAllTar(block(t)); err != nil {
		t.Fatalf("the unbroken archive: %v", err)
	}
	edit := func(f func(b []byte) []byte) []byte { return f(block(t)) }
	tests := []struct {
		name string
		data []byte
		want error
		why  string
	}{
		{"bad checksum", edit(func(b []byte) []byte { b[0] = 'X'; return b }), tar.ErrHeader, "checksum mismatch"},
		{"v7 header", edit(func(b []byte) []byte { copy(b[offMagic:], make([]byte, 8)); fixSum(b); return b }), tar.ErrHeader, "not a ustar"},
		{"star header", edit(func(b []byte) []byte { copy(b[offStar:], "tar\x00"); fixSum(b); return b }), tar.ErrHeader, "star headers"},
		{"garbage in a number", edit(func(b []byte) []byte { copy(b[offMode:], "0644\x00x\x00\x00"); fixSum(b); return b }), tar.ErrHeader, "numeric field"},
		{"garbage in a device number", edit(func(b []byte) []byte { copy(b[offDevMajor:], "9"); fixSum(b); return b }), tar.ErrHeader, "numeric field"},
		{"negative base-256 size", edit(func(b []byte) []byte { b[offSize] = 0xff; fixSum(b); return b }), tar.ErrHeader, "numeric field"},
		{"zero block then a header", append(make([]byte, blockSize), block(t)...), tar.ErrHeader, "zero block followed"},
		{"truncated data", block(t)[:blockSize+2], io.ErrUnexpectedEOF, ""},
		{"truncated header", block(t)[:100], io.ErrUnexpectedEOF, ""},
		{"two pax headers", append(append(metaHeader(t, tar.TypeXHeader, "path=data/a"), metaHeader(t, tar.TypeXHeader, "path=data/b")...), block(t)...), tar.ErrHeader, "after another meta header"},
		{"malformed pax record", append(metaHeader(t, tar.TypeXHeader, "path"), block(t)...), tar.ErrHeader, "malformed pax record"},
		{"negative pax size", append(metaHeader(t, tar.TypeXHeader, "size=-1"), block(t)...), tar.ErrHeader, "size -1 out of range"},
		{"pax size not a number", append(metaHeader(t, tar.TypeXHeader, "size=1e3"), block(t)...), tar.ErrHeader, "pax record size"},
		{"pax time not a time", append(metaHeader(t, tar.TypeXHeader, "mtime=1.5x"), block(t)...), tar.ErrHeader, "pax record mtime"},
		{"NUL in a pax path", append(metaHeader(t, tar.TypeXHeader, "path=data/a\x00b"), block(t)...), tar.ErrHeader, "malformed pax record"},
		{"GNU long name after pax", append(append(metaHeader(t, tar.TypeXHeader, "path=data/a"), metaHeader(t, tar.TypeGNULongName, "x=y")...), block(t)...), tar.ErrHeader, "GNU long name after"},
		{"two GNU long names", slices.Concat(metaHeader(t, tar.TypeGNULongName, "x=y"), metaHeader(t, tar.TypeGNULongLink, "x=y"), metaHeader(t, tar.TypeGNULongName, "x=y"), block(t)), tar.ErrHeader, "another of its kind"},
		// A size whose padding would overflow int64 must not make the
		// reader skip nothing and take the data for the next header.
		{"size near the largest int64", edit(func(b []byte) []byte {
			copy(b[offSize:], []byte{0x80, 0, 0, 0, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
			fixSum(b)
			return append(b[:blockSize], block(t)...)
		}), tar.ErrHeader, "out of range"},
		{"pax size near the largest int64", append(metaHeader(t, tar.TypeXHeader, "size=9223372036854775807"), block(t)...), tar.ErrHeader, "out of range"},
		{"oversized meta header", edit(func(b []byte) []byte {
			b[offType] = tar.TypeXHeader
			copy(b[offSize:], fmt.Sprintf("%011o\x00", maxMetaSize+1))
			fixSum(b)
			return b
		}), tar.ErrHeader, "more than the"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := readAllTar(tt.data)
			if !errors.Is(err, tt.want) || !strings.Contains(fmt.Sprint(err), tt.why) {
				t.Errorf("got %v, want %v (%q)", err, tt.want, tt.why)
			}
		})
	}
	// Inspect says why a header is corrupt.
	b := block(t)
	b[0] = 'X'
	_, err := Inspect(bytes.NewReader(compress(t, b)), Limits{})
	if want := "corrupt tar header (checksum mismatch)"; !strings.Contains(fmt.Sprint(err), want) {
		t.Errorf("Inspect: %v, want %q", err, want)
	}
}

// FuzzTarReader feeds tarReader and archive/tar the same bytes. Whatever
// tarReader returns archive/tar must return too: the same entries (type,
// name, link, mode, size, data) and the same end. tarReader may refuse
// more (see its doc), never less. Entries archive/tar reads as sparse
// files end the comparison: the checker refuses them.
func FuzzTarReader(f *testing.F) {
	f.Add(decompress(f, buildBytes(f, demoSource(f))))
	for _, format := range []tar.Format{tar.FormatUSTAR, tar.FormatPAX, tar.FormatGNU} {
		f.Add(tarOf(f, format,
			&tar.Header{Name: "data/", Typeflag: tar.TypeDir},
			&tar.Header{Name: "data/" + strings.Repeat("d/", 60) + "f", Typeflag: tar.TypeReg, Size: 600},
			&tar.Header{Name: "data/l", Typeflag: tar.TypeSymlink, Linkname: "f"}))
	}
	f.Add(tarOf(f, tar.FormatGNU, &tar.Header{Name: "data/" + strings.Repeat("x", 120), Typeflag: tar.TypeSymlink, Linkname: strings.Repeat("y", 120)}))
	f.Add(rawTar(f, []te{{name: "g", typ: tar.TypeXGlobalHeader, pax: map[string]string{"comment": "x"}}, fileTE("data/a", "a")}, true))
	f.Add(rawTar(f, []te{{name: "data/s", body: "abc", pax: map[string]string{"GNU.sparse.major": "1", "GNU.sparse.minor": "0"}}}, true))
	f.Add(rawTar(f, []te{{name: "data/big", pax: map[string]string{"size": "9223372036854775807"}}, fileTE("data/evil", "x")}, true))
	f.Fuzz(func(t *testing.T, data []byte) {
		compareTarReaders(t, data)
		// A mutation of a header almost always breaks its checksum: fix
		// the checksums, so that the fuzzer explores the fields.
		fixed := bytes.Clone(data)
		for off := 0; off+blockSize <= len(fixed); off += blockSize {
			if b := fixed[off : off+blockSize]; bytes.HasPrefix(b[offMagic:], []byte("ustar")) {
				fixSum(b)
			}
		}
		compareTarReaders(t, fixed)
	})
}

func compareTarReaders(t *testing.T, data []byte) {
	compareTarEntries(t, data, true)
	compareTarEntries(t, data, false) // Next skips what is left of each entry
}

// compareTarEntries walks data with both readers, reading each entry's
// data first when read is set.
func compareTarEntries(t *testing.T, data []byte, read bool) {
	ours := &tarReader{r: bytes.NewReader(data)}
	std := tar.NewReader(bytes.NewReader(data))
	for i := 0; ; i++ {
		h, err := ours.Next()
		sh, serr := std.Next()
		if err != nil {
			if err == io.EOF && serr != io.EOF {
				t.Fatalf("entry %d: tarReader ended, archive/tar returned %v, %v", i, sh, serr)
			}
			return
		}
		if serr != nil {
			t.Fatalf("entry %d: tarReader returned %q, archive/tar refused it: %v", i, h.Name, serr)
		}
		if sparse(h) || sparse(sh) {
			if sparse(h) != sparse(sh) {
				t.Fatalf("entry %d: sparse %v, archive/tar %v", i, sparse(h), sparse(sh))
			}
			return
		}
		got := tarEntry{h.Typeflag, h.Name, h.Linkname, h.Mode, h.Size, false, ""}
		want := tarEntry{sh.Typeflag, sh.Name, sh.Linkname, sh.Mode, sh.Size, false, ""}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Fatalf("entry %d (-archive/tar +tarReader):\n%s", i, diff)
		}
		if !read {
			continue
		}
		b, err := io.ReadAll(io.LimitReader(ours, 1<<20))
		sb, serr := io.ReadAll(io.LimitReader(std, 1<<20))
		if err != nil {
			return
		}
		if serr != nil || !bytes.Equal(b, sb) {
			t.Fatalf("entry %d: data %d bytes, archive/tar %d bytes, %v", i, len(b), len(sb), serr)
		}
	}
}
