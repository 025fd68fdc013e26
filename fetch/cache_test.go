package fetch

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/packets-dev/packets/packages"
)

// fillCache writes blobs into a fresh cache and returns it with their wants.
func fillCache(t *testing.T, n int) (*Cache, [][]byte, []Want) {
	t.Helper()
	c := &Cache{Dir: t.TempDir()}
	var datas [][]byte
	var wants []Want
	for i := range n {
		data, w := testBlob("b", 1000+i, uint64(i))
		writeFile(t, c.Dir, w.Digest.String()+blobExt, data)
		datas = append(datas, data)
		wants = append(wants, w)
	}
	return c, datas, wants
}

func TestCacheClean(t *testing.T) {
	c, datas, wants := fillCache(t, 3)
	_, stale := testBlob("stale", 777, 50)
	writeFile(t, c.Dir, stale.Digest.String()+partExt, make([]byte, 777))
	writeFile(t, c.Dir, wants[0].Digest.String()+partExt, make([]byte, 5)) // even a kept blob's part
	writeFile(t, c.Dir, "README", []byte("not ours"))
	if err := os.Mkdir(filepath.Join(c.Dir, stale.Digest.String()+blobExt), 0o755); err != nil {
		t.Fatal(err) // a directory with a blob's name is not ours either
	}

	keep := map[packages.Digest]bool{wants[0].Digest: true, wants[2].Digest: true}
	removed, freed, err := c.Clean(keep)
	if err != nil {
		t.Fatal(err)
	}
	if want := int64(len(datas[1]) + 777 + 5); removed != 3 || freed != want {
		t.Errorf("Clean removed %d files, freed %d bytes; want 3 and %d", removed, freed, want)
	}
	want := []string{wants[0].Digest.String() + blobExt, wants[2].Digest.String() + blobExt, stale.Digest.String() + blobExt, "README"}
	slices.Sort(want)
	if diff := cmp.Diff(want, cacheFiles(t, c.Dir)); diff != "" {
		t.Errorf("left in the cache (-want +got):\n%s", diff)
	}

	list, err := c.List()
	if err != nil {
		t.Fatal(err)
	}
	wantList := []packages.Digest{wants[0].Digest, wants[2].Digest}
	slices.SortFunc(wantList, func(a, b packages.Digest) int { return bytes.Compare(a[:], b[:]) })
	if diff := cmp.Diff(wantList, list); diff != "" {
		t.Errorf("List (-want +got):\n%s", diff)
	}
}

func TestCacheCleanMissingDir(t *testing.T) {
	c := &Cache{Dir: filepath.Join(t.TempDir(), "absent")}
	removed, freed, err := c.Clean(nil)
	if removed != 0 || freed != 0 || err != nil {
		t.Errorf("Clean of a missing cache = %d, %d, %v; want nothing done", removed, freed, err)
	}
	if list, err := c.List(); len(list) != 0 || err != nil {
		t.Errorf("List of a missing cache = %v, %v", list, err)
	}
}

func TestCacheVerify(t *testing.T) {
	c, datas, wants := fillCache(t, 2)
	bad := bytes.Clone(datas[1])
	bad[len(bad)-1] ^= 1
	writeFile(t, c.Dir, wants[1].Digest.String()+blobExt, bad)

	if err := c.Verify(wants[0].Digest); err != nil {
		t.Errorf("Verify of a good blob: %v", err)
	}
	err := c.Verify(wants[1].Digest)
	var mm *packages.DigestMismatchError
	if !errors.As(err, &mm) || mm.Want != wants[1].Digest || mm.Got != packages.SumBytes(bad) {
		t.Fatalf("Verify of a corrupt blob = %v, want a DigestMismatchError", err)
	}
	if _, err := os.Stat(c.Path(wants[1].Digest)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("corrupt blob not removed: %v", err)
	}
	if c.Has(wants[1].Digest, wants[1].Size) {
		t.Error("Has reports the removed blob")
	}
	if err := c.Verify(wants[1].Digest); !errors.Is(err, ErrNotFound) {
		t.Errorf("Verify of a missing blob = %v, want ErrNotFound", err)
	}
}

func TestCacheOpenVerified(t *testing.T) {
	c, datas, wants := fillCache(t, 1)
	d, size := wants[0].Digest, wants[0].Size

	f, err := c.OpenVerified(d, size)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(f)
	f.Close()
	if err != nil || !bytes.Equal(got, datas[0]) {
		t.Errorf("read %d bytes (%v), want the blob from its start", len(got), err)
	}

	tests := []struct {
		name  string
		size  int64
		write []byte
		check func(error) bool
	}{
		{"wrong size", size + 1, datas[0], func(err error) bool {
			var sm *packages.SizeMismatchError
			return errors.As(err, &sm)
		}},
		{"wrong bytes", size, append(bytes.Clone(datas[0][:size-1]), 0), func(err error) bool {
			var mm *packages.DigestMismatchError
			return errors.As(err, &mm)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			writeFile(t, c.Dir, d.String()+blobExt, tt.write)
			f, err := c.OpenVerified(d, tt.size)
			if f != nil {
				f.Close()
			}
			if !tt.check(err) {
				t.Fatalf("OpenVerified = %v", err)
			}
			if c.Has(d, int64(len(tt.write))) {
				t.Error("bad blob not removed")
			}
		})
	}
}

func TestCacheHas(t *testing.T) {
	c, _, wants := fillCache(t, 1)
	w := wants[0]
	tests := []struct {
		name string
		d    packages.Digest
		size int64
		want bool
	}{
		{"present", w.Digest, w.Size, true},
		{"other size", w.Digest, w.Size - 1, false},
		{"absent", packages.SumBytes([]byte("x")), 1, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := c.Has(tt.d, tt.size); got != tt.want {
				t.Errorf("Has = %v, want %v", got, tt.want)
			}
		})
	}
}
