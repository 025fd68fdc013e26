package index

import (
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/packets-dev/packets/packages"
)

// TestNamedAndFamilyNames checks both ways Named and FamilyNames answer:
// looking each key up (a few keys) and reading the whole index (keys for a
// good part of it), against what All holds.
func TestNamedAndFamilyNames(t *testing.T) {
	p := filepath.Join(t.TempDir(), "index.db")
	w, err := createIndexDB(t.Context(), p)
	if err != nil {
		t.Fatal(err)
	}
	const n = 300
	for i := range n {
		name := fmt.Sprintf("pkg%03d", i)
		fam := fmt.Sprintf("fam%03d", i/3) // three names a family: renames
		row := &pkgRow{Available: packages.Available{
			Manifest: packages.Manifest{Name: packages.Name(name), Version: "1.0",
				Family: packages.Family(uuid.NewSHA1(uuid.NameSpaceOID, []byte(fam)).String()), Serial: int64(1 + i%3)},
			Filename: "packages/" + name + ".tar.zst", Digest: packages.SumBytes([]byte(name)), Size: 1, InstalledSize: 1,
		}}
		if err := w.add(t.Context(), int64(i+1), row); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.finish(t.Context(), Release{Repo: "test", Version: 1, Issued: t0, Expires: t0.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	ix := openIndex(t, p)
	all, err := ix.All(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	// Preload reads whole only for keys that would: not for 63 of 300.
	if err := ix.Preload(t.Context(), 63); err != nil {
		t.Fatal(err)
	}
	if got, ok := ix.Whole(); ok || got != nil {
		t.Fatalf("Preload(63) of %d builds read the index whole", n)
	}
	// Below 64 keys, and under a quarter of the index: looked up; then read
	// whole, which later lookups (the last two) answer from.
	for _, k := range []int{1, 10, 63, 64, 100, n, 1, 10} {
		var (
			keys  []packages.Name
			fams  []packages.Family
			wantB []string
			wantN []packages.Name
		)
		for i := 0; i < k; i++ {
			a := all[(i*7)%n]
			keys, fams = append(keys, a.Name), append(fams, a.Family)
		}
		for _, a := range all {
			if slices.Contains(keys, a.Name) {
				wantB = append(wantB, fmt.Sprintf("%s#%d", a.Name, a.Serial))
			}
			if slices.Contains(fams, a.Family) {
				wantN = append(wantN, a.Name)
			}
		}
		got, err := ix.Named(t.Context(), keys)
		if err != nil {
			t.Fatal(err)
		}
		gotB := names(got)
		slices.Sort(gotB)
		if !slices.Equal(gotB, wantB) {
			t.Errorf("Named of %d names: %d builds %v, want %d %v", k, len(gotB), gotB, len(wantB), wantB)
		}
		gotN, err := ix.FamilyNames(t.Context(), fams)
		if err != nil {
			t.Fatal(err)
		}
		slices.Sort(gotN)
		if !slices.Equal(gotN, wantN) {
			t.Errorf("FamilyNames of %d families: %v, want %v", k, gotN, wantN)
		}
	}
	if got, err := ix.Named(t.Context(), nil); err != nil || len(got) != 0 {
		t.Errorf("Named(nil) = %v, %v", got, err)
	}
	// Read whole by the lookups above: Whole is All.
	if got, ok := ix.Whole(); !ok || !slices.Equal(names(got), names(all)) {
		t.Errorf("Whole after reading whole: %d builds, %v; want the %d of All", len(got), ok, len(all))
	}
	// Preload of enough names reads whole at once.
	fresh := openIndex(t, p)
	if err := fresh.Preload(t.Context(), n/4); err != nil {
		t.Fatal(err)
	}
	if got, ok := fresh.Whole(); !ok || !slices.Equal(names(got), names(all)) {
		t.Errorf("Whole after Preload(%d): %d builds, %v; want the %d of All", n/4, len(got), ok, len(all))
	}
}
