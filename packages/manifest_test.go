package packages

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

const goodManifest = `
[Info]
name = "htop"
version = "3.3.0"
description = "interactive process viewer"
dependencies = ["ncurses >= 6", "libnl"]
author = "someone"
family = "1F84CA15-5077-4f1d-a370-0ec860766eb2"
serial = 4

[Hooks]
install = "install.lua"

[Files]
config = ["data/etc/htoprc"]
`

func TestParseManifest(t *testing.T) {
	m, err := ParseManifest([]byte(goodManifest))
	if err != nil {
		t.Fatal(err)
	}
	want := &Manifest{
		Name: "htop", Version: "3.3.0", Description: "interactive process viewer", Author: "someone",
		Dependencies: []Dependency{
			{Name: "ncurses", Constraint: Constraint{Terms: []Term{{OpGe, "6"}}}},
			{Name: "libnl"},
		},
		Family: "1f84ca15-5077-4f1d-a370-0ec860766eb2", Serial: 4,
		Hooks: Hooks{Install: "install.lua"},
		Files: FileRules{Config: []string{"data/etc/htoprc"}},
	}
	if diff := cmp.Diff(want, m); diff != "" {
		t.Errorf("ParseManifest (-want +got):\n%s", diff)
	}
	again, err := ParseManifest(m.Encode())
	if err != nil {
		t.Fatalf("re-parse of Encode: %v", err)
	}
	if diff := cmp.Diff(m, again); diff != "" {
		t.Errorf("Encode round trip (-want +got):\n%s", diff)
	}
}

func TestParseManifestReportsEveryProblem(t *testing.T) {
	src := `[Info]
name = "Bad Name"
version = ""
family = "not-a-uuid"
serial = -1
dependencies = ["ok", "ok", "Nope"]

[Hooks]
install = "../evil.lua"

[Files]
setuid = ["/usr/bin/x"]
`
	_, err := ParseManifest([]byte(src))
	var te *TOMLError
	if !errors.As(err, &te) {
		t.Fatalf("want *TOMLError, got %v", err)
	}
	var got []string
	for _, p := range te.Problems {
		got = append(got, p.Field)
	}
	want := []string{"Info.name", "Info.version", "Info.family", "Info.serial",
		"Info.dependencies", "Info.dependencies", "Hooks.install", "Files.setuid"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("problem fields (-want +got):\n%s\nfull error:\n%v", diff, err)
	}
	if !strings.Contains(err.Error(), "manifest.toml:2: Info.name:") {
		t.Errorf("error does not name file:line of the field:\n%v", err)
	}
}

func TestParseManifestUnknownAndMistyped(t *testing.T) {
	tests := []struct{ name, src, want string }{
		{"unknown key", "[Info]\nname = \"a\"\nvesion = \"1\"\n", "manifest.toml:3: Info.vesion: unknown key"},
		{"wrong type", "[Info]\nname = \"a\"\nserial = \"4\"\n", "manifest.toml:3"},
		{"syntax", "[Info\nname = 1", "manifest.toml:2"},
		{"no info", "[Hooks]\n", "missing [Info] table"},
		{"too big", "#" + strings.Repeat("x", MaxManifestSize), "larger than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseManifest([]byte(tt.src))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v, want error containing %q", err, tt.want)
			}
		})
	}
}

func FuzzParseManifest(f *testing.F) {
	f.Add([]byte(goodManifest))
	f.Add([]byte("[Info]\nname=\"a\"\nserial=1\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := ParseManifest(data)
		if err != nil {
			return
		}
		if _, err := ParseManifest(m.Encode()); err != nil {
			t.Fatalf("a valid manifest does not survive Encode: %v", err)
		}
	})
}
