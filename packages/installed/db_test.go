package installed

import (
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/packets-dev/packets/packages"
)

func openTestDB(t *testing.T) *DB {
	t.Helper()
	db, err := Open(t.Context(), filepath.Join(t.TempDir(), "var/lib/packets/installed.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// receipt returns a full receipt for tests.
func receipt(name string, serial int64) *Package {
	deps, _ := packages.ParseDependency("ncurses >= 6")
	return &Package{
		Name: packages.Name(name), Version: packages.Version(fmt.Sprintf("1.%d", serial)),
		Family: "1f84ca15-5077-4f1d-a370-0ec860766eb2", Serial: serial,
		Description: "a test package", Dependencies: []packages.Dependency{deps},
		Repo: "extra", Digest: packages.SumBytes([]byte(name)), Size: 1234, InstalledSize: 5678,
		Reason: ReasonExplicit, InstalledAt: time.Unix(1700000000, 0).UTC(), InstalledBy: "root",
		Source: "https://mirror.example.org/packets", Key: "RWQf6LRCGA9i53mlYecO4IzT51TGPpvWucNSCh1CBM0QTaLn73Y7GFO3",
		Options: map[string]string{"worker_processes": "4"}, InstallHook: "-- install", RemoveHook: "-- remove",
		DataDir: "/opt/packets/" + name,
	}
}

// record writes a receipt and its files straight into the tables, as a
// committed change would.
func record(t *testing.T, db *DB, p *Package, files ...File) {
	t.Helper()
	err := db.inTx(t.Context(), func(tx *sql.Tx) error {
		if err := putPackage(tx, p); err != nil {
			return err
		}
		if err := putFiles(tx, files); err != nil {
			return err
		}
		return bumpGeneration(tx)
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestMigrateFromV1(t *testing.T) {
	path := filepath.Join(t.TempDir(), "installed.db")
	db, err := Open(t.Context(), path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	// Rebuild the file as version 1 wrote it, with a package in it.
	must(t, removeDBFiles(path))
	raw, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	v1 := &DB{sql: raw, log: slog.New(slog.DiscardHandler)}
	if _, err := v1.migrate(t.Context(), 1); err != nil {
		t.Fatal(err)
	}
	record(t, v1, receipt("htop", 4), File{Package: "htop", Path: "/opt/packets/htop/data/bin/htop", Type: TypeFile, Mode: 0o755})
	if v, _ := v1.schemaVersion(t.Context()); v != 1 {
		t.Fatalf("schema version %d, want 1", v)
	}
	raw.Close()

	db, err = Open(t.Context(), path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if v, _ := db.schemaVersion(t.Context()); v != SchemaVersion {
		t.Errorf("schema version %d after Open, want %d", v, SchemaVersion)
	}
	p, err := db.Package(t.Context(), "htop")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(receipt("htop", 4), p); diff != "" {
		t.Errorf("receipt after migration (-want +got):\n%s", diff)
	}
	if rows, err := loadJournal(t.Context(), db.sql); err != nil || len(rows) != 0 {
		t.Errorf("journal after migration: %v rows, err %v", len(rows), err)
	}
}

func removeDBFiles(path string) error {
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		if err := removeIfExists(p); err != nil {
			return err
		}
	}
	return nil
}

func removeIfExists(p string) error {
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

func TestOpenRefusesNewerSchema(t *testing.T) {
	path := filepath.Join(t.TempDir(), "installed.db")
	raw, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := raw.Exec(fmt.Sprintf("PRAGMA user_version = %d", SchemaVersion+1)); err != nil {
		t.Fatal(err)
	}
	raw.Close()
	_, err = Open(t.Context(), path, Options{})
	if !errors.Is(err, ErrTooNew) {
		t.Fatalf("Open of a newer schema: %v, want ErrTooNew", err)
	}
}

func TestSchemaVersionMatchesMigrations(t *testing.T) {
	if SchemaVersion != len(migrations) {
		t.Errorf("SchemaVersion = %d, len(migrations) = %d", SchemaVersion, len(migrations))
	}
}

func TestOpenSetsPragmas(t *testing.T) {
	db := openTestDB(t)
	for pragma, want := range map[string]string{"journal_mode": "wal", "synchronous": "2", "foreign_keys": "1", "temp_store": "2"} {
		var got string
		if err := db.sql.QueryRowContext(t.Context(), "PRAGMA "+pragma).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("PRAGMA %s = %q, want %q", pragma, got, want)
		}
	}
}

func TestSnapshotAndQueries(t *testing.T) {
	db := openTestDB(t)
	ctx := t.Context()
	g0, err := db.Generation(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if n, err := db.Count(ctx); err != nil || n != 0 {
		t.Errorf("Count of none = %d, %v", n, err)
	}
	htop, nano := receipt("htop", 4), receipt("nano", 7)
	nano.Reason, nano.Dependencies, nano.Options = ReasonDependency, nil, nil
	htopFiles := []File{
		{Package: "htop", Path: "/opt/packets/htop", Type: TypeDir, Mode: 0o755},
		{Package: "htop", Path: "/opt/packets/htop/data/bin/htop", Type: TypeFile, Mode: 0o755 | fs.ModeSetuid,
			Size: 3, Digest: packages.SumBytes([]byte("abc")), MTime: time.Unix(1, 5).UTC()},
		{Package: "htop", Path: "/usr/bin/htop", Type: TypeSymlink, Mode: 0o777, Link: "/opt/packets/htop/data/bin/htop", FromHook: true},
	}
	record(t, db, htop, htopFiles...)
	record(t, db, nano)
	if n, err := db.Count(ctx); err != nil || n != 2 {
		t.Errorf("Count = %d, %v; want 2", n, err)
	}

	s, err := db.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	wantNano := receipt("nano", 7)
	wantNano.Reason, wantNano.Dependencies, wantNano.Options = ReasonDependency, nil, nil
	want := &Snapshot{Generation: g0 + 2, Packages: map[packages.Name]*Package{"htop": receipt("htop", 4), "nano": wantNano}}
	if diff := cmp.Diff(want, s); diff != "" {
		t.Errorf("Snapshot (-want +got):\n%s", diff)
	}
	// Brief: what a plan reads, the rest zero.
	brief, err := db.Brief(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range want.Packages {
		*p = Package{Name: p.Name, Version: p.Version, Family: p.Family, Serial: p.Serial, Dependencies: p.Dependencies,
			Repo: p.Repo, Digest: p.Digest, Reason: p.Reason, Options: p.Options}
	}
	if diff := cmp.Diff(want, brief); diff != "" {
		t.Errorf("Brief (-want +got):\n%s", diff)
	}

	files, err := db.Files(ctx, "htop")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(htopFiles, files); diff != "" {
		t.Errorf("Files (-want +got):\n%s", diff)
	}
	if _, err := db.Package(ctx, "vim"); !errors.Is(err, ErrNotInstalled) {
		t.Errorf("Package(vim): %v, want ErrNotInstalled", err)
	}

	for path, want := range map[string]packages.Name{"/usr/bin/htop": "htop", "/usr/bin/nano": "", "/opt/packets/htop": "htop"} {
		got, ok, err := db.Owner(ctx, path)
		if err != nil || got != want || ok != (want != "") {
			t.Errorf("Owner(%s) = %q, %v, %v; want %q", path, got, ok, err, want)
		}
	}

	record(t, db, receipt("nvi", 1), File{Package: "nvi", Path: "/usr/bin/nvi", Type: TypeFile, Mode: 0o755, FromHook: true},
		File{Package: "nvi", Path: "/usr/bin0", Type: TypeFile, Mode: 0o644}, File{Package: "nvi", Path: "/usr/bin", Type: TypeDir, Mode: 0o755})
	owners, err := db.OwnersUnder(ctx, "/usr/bin/")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[string]packages.Name{"/usr/bin/htop": "htop", "/usr/bin/nvi": "nvi"}, owners); diff != "" {
		t.Errorf("OwnersUnder(/usr/bin/) (-want +got):\n%s", diff) // not the dir itself, nor a sibling that sorts after its slash
	}
	g0++ // nvi's record

	if err := db.SetReason(ctx, "nano", ReasonExplicit); err != nil {
		t.Fatal(err)
	}
	if p, _ := db.Package(ctx, "nano"); p.Reason != ReasonExplicit {
		t.Errorf("reason after SetReason: %q", p.Reason)
	}
	if g, _ := db.Generation(ctx); g != g0+3 {
		t.Errorf("generation after SetReason: %d, want %d", g, g0+3)
	}
	if err := db.SetReason(ctx, "vim", ReasonExplicit); !errors.Is(err, ErrNotInstalled) {
		t.Errorf("SetReason(vim): %v, want ErrNotInstalled", err)
	}
}

func TestUniqueOwnership(t *testing.T) {
	db := openTestDB(t)
	record(t, db, receipt("htop", 4), File{Package: "htop", Path: "/usr/bin/top", Type: TypeFile, Mode: 0o755})
	err := db.inTx(t.Context(), func(tx *sql.Tx) error {
		if err := putPackage(tx, receipt("procps", 1)); err != nil {
			return err
		}
		return putFiles(tx, []File{{Package: "procps", Path: "/usr/bin/top", Type: TypeFile, Mode: 0o755}})
	})
	var oe *OwnedError
	if !errors.As(err, &oe) || oe.Owner != "htop" || oe.Want != "procps" {
		t.Fatalf("second owner of /usr/bin/top: %v, want *OwnedError naming htop", err)
	}
	if n, _, _ := db.Owner(t.Context(), "/usr/bin/top"); n != "htop" {
		t.Errorf("owner after refused takeover: %q", n)
	}
	if _, err := db.Package(t.Context(), "procps"); !errors.Is(err, ErrNotInstalled) {
		t.Errorf("the refused transaction left procps behind: %v", err)
	}
}

func TestMeta(t *testing.T) {
	db := openTestDB(t)
	ctx := t.Context()
	if _, ok, err := db.Meta(ctx, MetaDataDir); ok || err != nil {
		t.Fatalf("Meta of an unset key: ok=%v err=%v", ok, err)
	}
	must(t, db.SetMeta(ctx, MetaDataDir, "/opt/packets"))
	must(t, db.SetMeta(ctx, MetaDataDir, "/srv/packets"))
	if v, ok, err := db.Meta(ctx, MetaDataDir); v != "/srv/packets" || !ok || err != nil {
		t.Errorf("Meta = %q, %v, %v", v, ok, err)
	}
	if err := db.SetMeta(ctx, MetaGeneration, "99"); err == nil {
		t.Error("SetMeta(generation) succeeded")
	}
}

func BenchmarkSnapshot1000(b *testing.B) {
	db, err := Open(b.Context(), filepath.Join(b.TempDir(), "installed.db"), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	err = db.inTx(b.Context(), func(tx *sql.Tx) error {
		for i := range 1000 {
			if err := putPackage(tx, receipt(fmt.Sprintf("pkg%04d", i), int64(i))); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		s, err := db.Snapshot(b.Context())
		if err != nil || len(s.Packages) != 1000 {
			b.Fatal(len(s.Packages), err)
		}
	}
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
