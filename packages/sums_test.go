package packages

import (
	"archive/tar"
	"bytes"
	"errors"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
)

// sumLine is one SumsFile line for a file holding body.
func sumLine(path, body string) string {
	return SumBytes([]byte(body)).String() + "  " + path + "\n"
}

func sumsTE(lines ...string) te { return fileTE(SumsFile, strings.Join(lines, "")) }

// tarEntries lists the entry names of a built archive, in order, and
// returns the content of the entry named want.
func tarEntries(t *testing.T, archive []byte, want string) (names []string, content []byte) {
	t.Helper()
	tr := tar.NewReader(bytes.NewReader(decompress(t, archive)))
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return names, content
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, hdr.Name)
		if hdr.Name == want {
			if content, err = io.ReadAll(tr); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// TestBuildWritesSums: Build lists every regular file it packs, second in
// the archive, as sha256sum(1) would print them from the package
// directory; the real sha256sum agrees where it is installed.
func TestBuildWritesSums(t *testing.T) {
	src := demoSource(t)
	if err := os.WriteFile(filepath.Join(src, `data/share/back\slash`), []byte("bs\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	names, list := tarEntries(t, buildBytes(t, src), SumsFile)
	if len(names) < 2 || names[0] != ManifestFile || names[1] != SumsFile {
		t.Fatalf("entries start %q, want %s then %s", names[:min(3, len(names))], ManifestFile, SumsFile)
	}
	// The regular files of demoSource, hashed from the source tree; the
	// hard link data/bin/demo-alias is not listed.
	files := []string{"data/bin/demo", "data/bin/demo-su", "data/etc/demo.conf", "data/lib/libdemo.so.1.2",
		`data/share/back\slash`, "data/share/doc/README", "data/share/doc/ünïcødé.txt",
		"data/share/" + strings.Repeat("long-name-", 15) + "x"}
	slices.Sort(files)
	var want strings.Builder
	for _, f := range files {
		b, err := os.ReadFile(filepath.Join(src, f))
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(f, `\`) {
			want.WriteString(`\` + strings.Replace(sumLine(f, string(b)), `\`, `\\`, 1))
			continue
		}
		want.WriteString(sumLine(f, string(b)))
	}
	if string(list) != want.String() {
		t.Errorf("%s:\n%s\nwant:\n%s", SumsFile, list, want.String())
	}

	if _, err := exec.LookPath("sha256sum"); err != nil {
		t.Skip("no sha256sum to check the format against")
	}
	if err := os.WriteFile(filepath.Join(src, SumsFile), list, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("sha256sum", "--check", "--strict", "--quiet", SumsFile)
	cmd.Dir = src
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("sha256sum --check: %v\n%s", err, out)
	}
}

// TestSumsRefused: a SumsFile that is misplaced, malformed, or does not
// match the archive's files exactly is refused by Inspect and by Extract
// (trusting it or not), naming the entry at fault, before anything
// outside the staging area is touched.
func TestSumsRefused(t *testing.T) {
	m := manifestTE("")
	f := fileTE("data/f", "f\n")
	fLine := sumLine("data/f", "f\n")
	g := fileTE("data/g", "g\n")
	gLine := sumLine("data/g", "g\n")
	hex := SumBytes(nil).String()
	tests := []struct {
		name     string
		entries  []te
		wantPath string
		want     string
		wantErr  error
		lim      Limits
		trusted  bool // TrustSums lets it through: only the content check refuses it
	}{
		{name: "after data/", entries: []te{m, dirTE("data"), sumsTE()},
			wantPath: SumsFile, want: "must be the second entry"},
		{name: "twice", entries: []te{m, sumsTE(fLine), sumsTE(fLine), f},
			wantPath: SumsFile, want: "must be the second entry"},
		{name: "a symlink", entries: []te{m, symlinkTE(SumsFile, "data/f"), f},
			wantPath: SumsFile, want: "must be a regular file"},
		{name: "too large", entries: []te{m, {name: SumsFile, size: MaxSumsSize + 1}},
			wantPath: SumsFile, want: "larger than the", wantErr: ErrTooLarge},
		{name: "more files than entries", entries: []te{m, sumsTE(sumLine("data/a", ""), sumLine("data/b", ""), sumLine("data/c", ""), fLine), f},
			lim: Limits{MaxEntries: 3}, wantPath: SumsFile, want: "lists 4 files, more than the 3 entries allowed", wantErr: ErrTooLarge},
		{name: "a file it does not list", entries: []te{m, sumsTE(fLine), f, g},
			wantPath: "data/g", want: "does not list"},
		{name: "a file the archive lacks", entries: []te{m, sumsTE(fLine, gLine), f},
			wantPath: "data/g", want: "not a regular file of the archive"},
		{name: "a path that is an implicit directory", entries: []te{m, sumsTE(sumLine("data/d", ""), sumLine("data/d/f", "f\n")), fileTE("data/d/f", "f\n")},
			wantPath: "data/d", want: "not a regular file of the archive"},
		{name: "a symlink listed", entries: []te{m, sumsTE(sumLine("data/l", "")), symlinkTE("data/l", "f")},
			wantPath: "data/l", want: "listed in sha256sums, but a symlink"},
		{name: "a directory listed", entries: []te{m, sumsTE(sumLine("data/d", "")), dirTE("data/d")},
			wantPath: "data/d", want: "but a dir"},
		{name: "a hard link listed", entries: []te{m, sumsTE(fLine, sumLine("data/h", "f\n")), f, {name: "data/h", typ: tar.TypeLink, link: "data/f"}},
			wantPath: "data/h", want: "but a hardlink"},
		{name: "a wrong digest", entries: []te{m, sumsTE(sumLine("data/f", "something else")), f},
			wantPath: "data/f", want: "content does not match its digest in sha256sums", trusted: true},

		// The one spelling.
		{name: "uppercase hex", entries: []te{m, sumsTE(strings.ToUpper(fLine[:64]) + fLine[64:]), f},
			wantPath: SumsFile, want: "line 1: the digest is not 64 lowercase hex digits"},
		{name: "short digest", entries: []te{m, sumsTE(hex[:63] + "  data/f\n"), f},
			wantPath: SumsFile, want: "line 1: not \"<sha256>  <path>\""},
		{name: "one space", entries: []te{m, sumsTE(hex + " data/f\n"), f},
			wantPath: SumsFile, want: "line 1: not"},
		{name: "binary mode", entries: []te{m, sumsTE(hex + " *data/f\n"), f},
			wantPath: SumsFile, want: "line 1: not"},
		{name: "no last newline", entries: []te{m, sumsTE(strings.TrimSuffix(fLine, "\n")), f},
			wantPath: SumsFile, want: "line 1: the last line has no newline"},
		{name: "CRLF", entries: []te{m, sumsTE(strings.Replace(fLine, "\n", "\r\n", 1)), f},
			wantPath: "data/f\r", want: "sha256sums line 1: name contains a control"},
		{name: "empty line", entries: []te{m, sumsTE(fLine, "\n"), f},
			wantPath: SumsFile, want: "line 2: not"},
		{name: "out of order", entries: []te{m, sumsTE(gLine, fLine), f, g},
			wantPath: "data/f", want: `line 2: "data/f" does not follow "data/g"`},
		{name: "listed twice", entries: []te{m, sumsTE(fLine, fLine), f},
			wantPath: "data/f", want: "listed once each"},
		{name: "outside data/", entries: []te{m, sumsTE(sumLine("install.lua", "")), f},
			wantPath: "install.lua", want: "is not below data/"},
		{name: "dot-dot", entries: []te{m, sumsTE(sumLine("data/../f", "")), f},
			wantPath: "data/../f", want: `contains ".."`},
		{name: "unescaped backslash", entries: []te{m, sumsTE(sumLine(`data/a\b`, "")), fileTE(`data/a\b`, "")},
			wantPath: SumsFile, want: "must be escaped"},
		{name: "escaped without a backslash", entries: []te{m, sumsTE(`\` + fLine), f},
			wantPath: SumsFile, want: "an escaped line for a path without a backslash"},
		{name: "an escape sha256sum would not write", entries: []te{m, sumsTE(`\` + hex + `  data/a\nb` + "\n"), f},
			wantPath: SumsFile, want: `only "\\" may be escaped`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			archive := hostile(t, tt.entries...)
			_, err := Inspect(bytes.NewReader(archive), tt.lim)
			wantEntryError(t, err, tt.wantPath, tt.want)
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("Inspect: %v, want it to match %v", err, tt.wantErr)
			}
			for _, trust := range []bool{false, true} {
				s := newSandbox(t)
				before := snapshot(t, s.outer)
				_, err := Extract(bytes.NewReader(archive), s.root, ExtractOptions{Limits: tt.lim, Dest: testDest, Tag: "tx1", TrustSums: trust})
				if trust && tt.trusted {
					if err != nil {
						t.Errorf("Extract trusting the list: %v", err)
					}
					continue
				}
				wantEntryError(t, err, tt.wantPath, tt.want)
				wantUnchanged(t, before, snapshot(t, s.outer))
			}
		})
	}
}

// TestExtractTrustSums: trusted, a listed digest is what Extract returns,
// unhashed (so a list that lies is believed: which is why only archives
// that matched a signed index are trusted); untrusted, the content is
// hashed and checked. Without a list every file is hashed either way.
func TestExtractTrustSums(t *testing.T) {
	m := manifestTE("")
	lying := hostile(t, m, sumsTE(sumLine("data/f", "what the list says")), fileTE("data/f", "f\n"))
	honest := hostile(t, m, sumsTE(sumLine("data/f", "f\n")), fileTE("data/f", "f\n"))
	unlisted := hostile(t, m, fileTE("data/f", "f\n"))
	tests := []struct {
		name    string
		archive []byte
		trust   bool
		want    string // the body whose digest Extract returns; "" for a refusal
	}{
		{"lying, trusted", lying, true, "what the list says"},
		{"lying, checked", lying, false, ""},
		{"honest, trusted", honest, true, "f\n"},
		{"honest, checked", honest, false, "f\n"},
		{"no list, trusted", unlisted, true, "f\n"},
		{"no list, checked", unlisted, false, "f\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSandbox(t)
			st, err := Extract(bytes.NewReader(tt.archive), s.root, ExtractOptions{Dest: testDest, Tag: "tx1", TrustSums: tt.trust})
			if tt.want == "" {
				wantEntryError(t, err, "data/f", "content does not match")
				return
			}
			if err != nil {
				t.Fatalf("Extract: %v", err)
			}
			if got, want := st.Files[0].Digest, SumBytes([]byte(tt.want)); got != want {
				t.Errorf("staged digest %s, want %s", got.Short(), want.Short())
			}
			if got, want := st.Contents.Entries[0].Digest, st.Files[0].Digest; got != want {
				t.Errorf("Contents digest %s, Files digest %s", got.Short(), want.Short())
			}
		})
	}
}

// FuzzParseSums: whatever parseSums accepts is the one spelling of its
// list, so writing the list again gives the same bytes.
func FuzzParseSums(f *testing.F) {
	f.Add([]byte(sumLine("data/a", "a") + sumLine("data/b/c", "")))
	f.Add([]byte(`\` + strings.Replace(sumLine(`data/a\b`, "x"), `\`, `\\`, 1)))
	f.Add([]byte(""))
	f.Add([]byte(sumLine("data/b", "") + sumLine("data/a", "")))
	f.Fuzz(func(t *testing.T, b []byte) {
		sums, err := parseSums(b, fuzzLimits)
		if err != nil {
			if _, ok := err.(*EntryError); !ok {
				t.Fatalf("error %T is not an *EntryError: %v", err, err)
			}
			return
		}
		paths := slices.Sorted(maps.Keys(sums))
		digests := make([]Digest, len(paths))
		for i, p := range paths {
			digests[i] = sums[p]
		}
		if again := formatSums(paths, digests); !bytes.Equal(again, b) {
			t.Fatalf("parsed %q, which formats as %q", b, again)
		}
	})
}

// A truncated archive that announces a list of MaxSumsSize costs what it
// holds, not what it announces.
func TestSumsAnnouncedSizeIsNotAllocated(t *testing.T) {
	archive := hostile(t, manifestTE(""), te{name: SumsFile, size: MaxSumsSize, body: sumLine("data/f", "f\n")})
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err := Inspect(bytes.NewReader(archive), Limits{})
	runtime.ReadMemStats(&after)
	wantEntryError(t, err, SumsFile, "truncated archive")
	if n := after.TotalAlloc - before.TotalAlloc; n > MaxSumsSize/4 {
		t.Errorf("reading it allocated %d bytes", n)
	}
}

// A list larger than MaxSumsSize is left out (it is optional): the
// archive is read with its files hashed.
func TestBuildLeavesOutALargeList(t *testing.T) {
	src := demoSource(t)
	root, err := os.OpenRoot(src)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	var b bytes.Buffer
	if _, err := buildFrom(root, &b, 10); err != nil {
		t.Fatalf("buildFrom: %v", err)
	}
	if names, _ := tarEntries(t, b.Bytes(), ""); slices.Contains(names, SumsFile) {
		t.Fatalf("%s written, larger than the limit", SumsFile)
	}
	c, err := Inspect(bytes.NewReader(b.Bytes()), Limits{})
	if err != nil {
		t.Fatalf("Inspect: %v", err)
	}
	for _, e := range c.Entries {
		if e.Path == "data/etc/demo.conf" && e.Digest != SumBytes([]byte("key = value\n")) {
			t.Errorf("%s: digest %s, want its content's", e.Path, e.Digest.Short())
		}
	}
}
