// Package config reads /etc/packets/config.toml and resolves every path of
// the machine layout (DESIGN.md §3) under --root.
//
// Every key is optional; a missing file means the defaults. Unknown keys and
// values of the wrong type are errors naming the key and its line, so that a
// typo never silently means "default".
package config

import (
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/packets-dev/packets/packages"
)

// DefaultFile is where the configuration lives on a machine.
const DefaultFile = "/etc/packets/config.toml"

// DefaultRepo names the repository configured by the top-level mirrors key.
const DefaultRepo = ""

// Config is the validated configuration. Paths are machine paths (as seen
// from inside --root); Layout maps them to host paths.
type Config struct {
	Mirrors     []string // the default repository's mirrors, in order
	DataDir     string   // /opt/packets
	BinDir      string   // /usr/bin
	CacheDir    string   // /var/cache/packets
	LibDir      string   // /var/lib/packets: installed.db, index.db, lock
	StateFile   string   // /etc/packets/state.hcl
	StateDir    string   // /etc/packets/state.d
	KeysDir     string   // /etc/packets/keys
	Repos       []Repo   // named repositories, in config order (after the default one)
	Peer        Peer
	Hooks       Hooks
	Fetch       Fetch
	MaxRemovals int // removal guard limit; 0 = max(10, half the managed packages)
	Watch       Watch
}

// Repo is a named repository with its own mirrors and trusted keys.
type Repo struct {
	Name    string
	Mirrors []string
	Keys    []string // machine paths of .pub files; empty = every key in KeysDir
}

// Peer configures LAN peering (DESIGN.md §10). It is off unless enabled.
type Peer struct {
	Enabled    bool
	UDPPort    int
	HTTPPort   int
	Interfaces []string      // empty = every up, broadcast-capable interface
	Window     time.Duration // how long a client waits for answers
}

// Hooks configures the Lua hook sandbox.
type Hooks struct {
	Timeout     time.Duration
	MemoryBytes uint64
}

// Fetch configures downloads.
type Fetch struct {
	Parallel     int
	Retries      int
	StallTimeout time.Duration
}

// Watch configures watch mode.
type Watch struct {
	Debounce time.Duration
	Resync   time.Duration
}

// Defaults returns the configuration used when config.toml says nothing.
func Defaults() Config {
	return Config{
		DataDir:   "/opt/packets",
		BinDir:    "/usr/bin",
		CacheDir:  "/var/cache/packets",
		LibDir:    "/var/lib/packets",
		StateFile: "/etc/packets/state.hcl",
		StateDir:  "/etc/packets/state.d",
		KeysDir:   "/etc/packets/keys",
		Peer:      Peer{UDPPort: 1333, HTTPPort: 9123, Window: 150 * time.Millisecond},
		Hooks:     Hooks{Timeout: 60 * time.Second, MemoryBytes: 1 << 30},
		Fetch:     Fetch{Parallel: 4, Retries: 4, StallTimeout: 30 * time.Second},
		Watch:     Watch{Debounce: 300 * time.Millisecond, Resync: 5 * time.Minute},
	}
}

// fileTOML is the on-disk shape. Pointers tell "absent" from "zero".
type fileTOML struct {
	Mirrors     []string            `toml:"mirrors"`
	DataDir     *string             `toml:"data_dir"`
	BinDir      *string             `toml:"bin_dir"`
	CacheDir    *string             `toml:"cache_dir"`
	LibDir      *string             `toml:"lib_dir"`
	StateFile   *string             `toml:"state_file"`
	StateDir    *string             `toml:"state_dir"`
	KeysDir     *string             `toml:"keys_dir"`
	MaxRemovals *int                `toml:"max_removals"`
	Repos       map[string]repoTOML `toml:"repos"`
	Peer        struct {
		Enabled    *bool    `toml:"enabled"`
		UDPPort    *int     `toml:"udp_port"`
		HTTPPort   *int     `toml:"http_port"`
		Interfaces []string `toml:"interfaces"`
		Window     *string  `toml:"window"`
	} `toml:"peer"`
	Hooks struct {
		Timeout *string `toml:"timeout"`
		Memory  *int64  `toml:"memory_mb"`
	} `toml:"hooks"`
	Fetch struct {
		Parallel     *int    `toml:"parallel"`
		Retries      *int    `toml:"retries"`
		StallTimeout *string `toml:"stall_timeout"`
	} `toml:"fetch"`
	Watch struct {
		Debounce *string `toml:"debounce"`
		Resync   *string `toml:"resync"`
	} `toml:"watch"`
}

type repoTOML struct {
	Mirrors []string `toml:"mirrors"`
	Keys    []string `toml:"keys"`
}

// Load reads the configuration at hostPath (a path on this host, already
// joined with --root by the caller when it is the default). A missing file
// gives the defaults.
func Load(hostPath string) (Config, error) {
	data, err := os.ReadFile(hostPath)
	if errors.Is(err, fs.ErrNotExist) {
		return Defaults(), nil
	}
	if err != nil {
		return Config{}, fmt.Errorf("read config: %w", err)
	}
	return Parse(hostPath, data)
}

// Parse parses and validates config.toml content; file names it in errors.
func Parse(file string, data []byte) (Config, error) {
	var raw fileTOML
	md, err := packages.DecodeTOMLStrict(file, data, &raw)
	if err != nil {
		return Config{}, err
	}
	v := validator{file: file, data: data}
	c := v.apply(&raw, md)
	if len(v.probs) > 0 {
		return Config{}, &packages.TOMLError{File: file, Problems: v.probs}
	}
	return c, nil
}

type validator struct {
	file  string
	data  []byte
	probs []packages.Problem
}

func (v *validator) add(field, format string, args ...any) {
	v.probs = append(v.probs, packages.Problem{Field: field, Line: packages.TOMLKeyLine(v.data, toml.Key(strings.Split(field, "."))), Msg: fmt.Sprintf(format, args...)})
}

func (v *validator) apply(raw *fileTOML, md toml.MetaData) Config {
	c := Defaults()
	c.Mirrors = v.mirrors("mirrors", raw.Mirrors)
	for _, p := range []struct {
		field string
		src   *string
		dst   *string
	}{
		{"data_dir", raw.DataDir, &c.DataDir}, {"bin_dir", raw.BinDir, &c.BinDir},
		{"cache_dir", raw.CacheDir, &c.CacheDir}, {"lib_dir", raw.LibDir, &c.LibDir},
		{"state_file", raw.StateFile, &c.StateFile}, {"state_dir", raw.StateDir, &c.StateDir},
		{"keys_dir", raw.KeysDir, &c.KeysDir},
	} {
		if p.src != nil {
			*p.dst = v.machinePath(p.field, *p.src)
		}
	}
	if raw.MaxRemovals != nil {
		c.MaxRemovals = v.positive("max_removals", *raw.MaxRemovals)
	}
	c.Repos = v.repos(raw.Repos, md)
	v.peer(raw, &c.Peer)
	if raw.Hooks.Timeout != nil {
		c.Hooks.Timeout = v.duration("hooks.timeout", *raw.Hooks.Timeout)
	}
	if raw.Hooks.Memory != nil {
		c.Hooks.MemoryBytes = uint64(v.positive("hooks.memory_mb", int(*raw.Hooks.Memory))) << 20
	}
	if raw.Fetch.Parallel != nil {
		c.Fetch.Parallel = v.positive("fetch.parallel", *raw.Fetch.Parallel)
	}
	if raw.Fetch.Retries != nil {
		c.Fetch.Retries = *raw.Fetch.Retries
	}
	if raw.Fetch.StallTimeout != nil {
		c.Fetch.StallTimeout = v.duration("fetch.stall_timeout", *raw.Fetch.StallTimeout)
	}
	if raw.Watch.Debounce != nil {
		c.Watch.Debounce = v.duration("watch.debounce", *raw.Watch.Debounce)
	}
	if raw.Watch.Resync != nil {
		c.Watch.Resync = v.duration("watch.resync", *raw.Watch.Resync)
	}
	return c
}

func (v *validator) peer(raw *fileTOML, p *Peer) {
	if raw.Peer.Enabled != nil {
		p.Enabled = *raw.Peer.Enabled
	}
	if raw.Peer.UDPPort != nil {
		p.UDPPort = v.port("peer.udp_port", *raw.Peer.UDPPort)
	}
	if raw.Peer.HTTPPort != nil {
		p.HTTPPort = v.port("peer.http_port", *raw.Peer.HTTPPort)
	}
	p.Interfaces = raw.Peer.Interfaces
	if raw.Peer.Window != nil {
		p.Window = v.duration("peer.window", *raw.Peer.Window)
	}
}

func (v *validator) repos(raw map[string]repoTOML, md toml.MetaData) []Repo {
	// Config order matters (a name offered twice comes from the first), and
	// maps have none: take the order in which the tables appear.
	var out []Repo
	for _, k := range md.Keys() {
		if len(k) != 2 || k[0] != "repos" {
			continue
		}
		name := k[1]
		if slices.ContainsFunc(out, func(r Repo) bool { return r.Name == name }) {
			continue
		}
		r := raw[name]
		if err := packages.Name(name).Validate(); err != nil {
			v.add("repos."+name, "repository name: %v", err)
		}
		keys := make([]string, 0, len(r.Keys))
		for i, k := range r.Keys {
			keys = append(keys, v.machinePath(fmt.Sprintf("repos.%s.keys[%d]", name, i), k))
		}
		out = append(out, Repo{Name: name, Mirrors: v.mirrors("repos."+name+".mirrors", r.Mirrors), Keys: keys})
	}
	return out
}

func (v *validator) mirrors(field string, in []string) []string {
	out := make([]string, 0, len(in))
	for _, m := range in {
		u, err := url.Parse(m)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https" && u.Scheme != "file") || (u.Scheme != "file" && u.Host == "") {
			v.add(field, "%q is not an http://, https:// or file:// URL", m)
			continue
		}
		out = append(out, strings.TrimRight(m, "/"))
	}
	return out
}

func (v *validator) machinePath(field, p string) string {
	if !path.IsAbs(p) || path.Clean(p) != p {
		v.add(field, "%q must be a clean absolute path", p)
	}
	return p
}

func (v *validator) duration(field, s string) time.Duration {
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		v.add(field, "%q is not a positive duration like \"60s\" or \"5m\"", s)
	}
	return d
}

func (v *validator) positive(field string, n int) int {
	if n <= 0 {
		v.add(field, "%d must be positive", n)
	}
	return n
}

func (v *validator) port(field string, n int) int {
	if n <= 0 || n > 65535 {
		v.add(field, "%d is not a port number", n)
	}
	return n
}

// Layout maps the configuration's machine paths to host paths under root.
type Layout struct {
	Root string // --root, "/" by default
	Config
}

// Host returns the host path of a machine path.
func (l Layout) Host(machinePath string) string { return filepath.Join(l.Root, machinePath) }

// InstalledDB is the host path of installed.db.
func (l Layout) InstalledDB() string { return l.Host(path.Join(l.LibDir, "installed.db")) }

// LockFile is the host path of the writers' lock.
func (l Layout) LockFile() string { return l.Host(path.Join(l.LibDir, "lock")) }

// StateMemo is the host path of the state memo (desired.Memo), beside
// installed.db.
func (l Layout) StateMemo() string { return l.Host(path.Join(l.LibDir, "state.memo")) }

// RepoNames lists every repository in priority order: the default one, then
// the named ones in config order.
func (l Layout) RepoNames() []string {
	names := []string{DefaultRepo}
	for _, r := range l.Repos {
		names = append(names, r.Name)
	}
	return names
}
