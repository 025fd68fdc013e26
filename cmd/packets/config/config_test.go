package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestParseFull(t *testing.T) {
	src := `
mirrors   = ["https://mirror.example.org/packets/"]
data_dir  = "/srv/packets"

[repos.extra]
mirrors = ["https://other.example.org/packets"]
keys    = ["/etc/packets/keys/extra.pub"]

[repos.alpha]
mirrors = ["http://127.0.0.1:8080"]

[peer]
enabled  = true
udp_port = 1444

[hooks]
timeout = "5s"
`
	c, err := Parse("config.toml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	want := Defaults()
	want.Mirrors = []string{"https://mirror.example.org/packets"}
	want.DataDir = "/srv/packets"
	want.Repos = []Repo{
		{Name: "extra", Mirrors: []string{"https://other.example.org/packets"}, Keys: []string{"/etc/packets/keys/extra.pub"}},
		{Name: "alpha", Mirrors: []string{"http://127.0.0.1:8080"}, Keys: []string{}},
	}
	want.Peer.Enabled, want.Peer.UDPPort = true, 1444
	want.Hooks.Timeout = 5 * time.Second
	if diff := cmp.Diff(want, c); diff != "" {
		t.Errorf("Parse (-want +got):\n%s", diff)
	}
	l := Layout{Root: "/tmp/r", Config: c}
	if got := l.RepoNames(); !cmp.Equal(got, []string{"", "extra", "alpha"}) {
		t.Errorf("RepoNames = %q: config order must be kept", got)
	}
	if got := l.InstalledDB(); got != "/tmp/r/var/lib/packets/installed.db" {
		t.Errorf("InstalledDB = %q", got)
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct{ name, src, want string }{
		{"unknown key", "mirrors = []\ndata_dri = \"/x\"\n", "config.toml:2: data_dri: unknown key"},
		{"unknown nested", "[peer]\nenabled = true\nudp = 1\n", "config.toml:3: peer.udp: unknown key"},
		{"wrong type", "[peer]\nenabled = \"yes\"\n", "config.toml:2: peer.enabled"},
		{"bad duration", "[hooks]\ntimeout = \"soon\"\n", "config.toml:2: hooks.timeout: \"soon\" is not a positive duration"},
		{"relative path", "cache_dir = \"cache\"\n", "config.toml:1: cache_dir: \"cache\" must be a clean absolute path"},
		{"bad mirror", "mirrors = [\"ftp://x\"]\n", "config.toml:1: mirrors"},
		{"bad port", "[peer]\nhttp_port = 70000\n", "config.toml:2: peer.http_port"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("config.toml", []byte(tt.src))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v\nwant an error containing %q", err, tt.want)
			}
		})
	}
}

func TestLoadMissingIsDefaults(t *testing.T) {
	c, err := Load(filepath.Join(t.TempDir(), "config.toml"))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(Defaults(), c); diff != "" {
		t.Errorf("missing file (-want +got):\n%s", diff)
	}
	p := filepath.Join(t.TempDir(), "config.toml")
	if err := os.WriteFile(p, []byte("bin_dir = 3\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(p); err == nil || !strings.Contains(err.Error(), ":1: bin_dir") {
		t.Errorf("Load of a mistyped file: %v", err)
	}
}
