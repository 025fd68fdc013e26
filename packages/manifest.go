package packages

import (
	"bytes"
	"fmt"
	"path"
	"slices"
	"strings"

	"github.com/BurntSushi/toml"
	"github.com/google/uuid"
)

// MaxManifestSize bounds manifest.toml; a larger one is refused unread.
const MaxManifestSize = 64 << 10

// Fixed names inside an archive.
const (
	ManifestFile = "manifest.toml"
	InstallHook  = "install.lua"
	RemoveHook   = "remove.lua"
	DataDir      = "data"
)

// Family is the UUID that names a package's lineage: every release of one
// piece of software shares it, across renames. It is stored in canonical
// lowercase form.
type Family string

// ParseFamily validates s as a UUID and returns it in canonical form.
func ParseFamily(s string) (Family, error) {
	u, err := uuid.Parse(s)
	if err != nil || len(s) != 36 {
		return "", fmt.Errorf("family %q is not a UUID like 1f84ca15-5077-4f1d-a370-0ec860766eb2", s)
	}
	return Family(u.String()), nil
}

// Manifest is a package's metadata, read from manifest.toml.
type Manifest struct {
	Name         Name
	Version      Version
	Description  string
	Dependencies []Dependency
	Author       string
	Family       Family
	Serial       int64 // grows with every release of the family; one serial is one build
	Hooks        Hooks
	Files        FileRules
}

// Hooks names the hook scripts an archive carries. Each is empty or the fixed
// top-level name (InstallHook, RemoveHook).
type Hooks struct {
	Install string
	Remove  string
}

// FileRules declares files that need care, as paths inside the archive
// ("data/etc/app.conf").
type FileRules struct {
	Config []string // kept when the user modified them; the new one is saved beside
	Setuid []string // the only files allowed the setuid or setgid bit
}

// Ref names one build: "htop 3.3.0".
func (m *Manifest) Ref() Ref { return Ref{Name: m.Name, Version: m.Version} }

// SameBuild reports whether m and o name the same build: name, version,
// family and serial.
func (m *Manifest) SameBuild(o *Manifest) bool {
	return m.Name == o.Name && m.Version == o.Version && m.Family == o.Family && m.Serial == o.Serial
}

// BuildMismatchError says that an archive holds another build than the one
// the signed index lists for its digest: the repository is inconsistent or
// lying. The same bytes will always fail.
type BuildMismatchError struct {
	Digest Digest
	Want   *Manifest // as the index lists it
	Got    *Manifest // as the archive holds it
}

func (e *BuildMismatchError) Error() string {
	return fmt.Sprintf("archive %s: the index lists %s %s (family %s, serial %d), the archive holds %s %s (family %s, serial %d)",
		e.Digest.Short(), e.Want.Name, e.Want.Version, e.Want.Family, e.Want.Serial, e.Got.Name, e.Got.Version, e.Got.Family, e.Got.Serial)
}

// IsConfig reports whether archive path p is declared a config file.
func (m *Manifest) IsConfig(p string) bool { return slices.Contains(m.Files.Config, p) }

// MaySetuid reports whether archive path p may carry setuid/setgid bits.
func (m *Manifest) MaySetuid(p string) bool { return slices.Contains(m.Files.Setuid, p) }

// Ref identifies a package build by name and version, for messages and plans.
type Ref struct {
	Name    Name
	Version Version
}

func (r Ref) String() string {
	if r.Version == "" {
		return string(r.Name)
	}
	return string(r.Name) + "@" + string(r.Version)
}

// manifestTOML is the on-disk shape; Manifest is the validated one.
type manifestTOML struct {
	Info struct {
		Name         string   `toml:"name"`
		Version      string   `toml:"version"`
		Description  string   `toml:"description"`
		Dependencies []string `toml:"dependencies"`
		Author       string   `toml:"author"`
		Family       string   `toml:"family"`
		Serial       *int64   `toml:"serial"`
	} `toml:"Info"`
	Hooks struct {
		Install string `toml:"install"`
		Remove  string `toml:"remove"`
	} `toml:"Hooks"`
	Files struct {
		Config []string `toml:"config"`
		Setuid []string `toml:"setuid"`
	} `toml:"Files"`
}

// ParseManifest parses and validates manifest.toml. It reports every problem
// at once, each naming its field and line, as a *TOMLError.
func ParseManifest(data []byte) (*Manifest, error) {
	const file = ManifestFile
	if len(data) > MaxManifestSize {
		return nil, &TOMLError{File: file, Problems: []Problem{{Msg: fmt.Sprintf("%d bytes is larger than the %d allowed", len(data), MaxManifestSize)}}}
	}
	var raw manifestTOML
	md, err := DecodeTOMLStrict(file, data, &raw)
	if err != nil {
		return nil, err
	}
	v := manifestValidator{data: data}
	m := v.validate(&raw, md)
	if len(v.probs) > 0 {
		return nil, &TOMLError{File: file, Problems: v.probs}
	}
	return m, nil
}

type manifestValidator struct {
	data  []byte
	probs []Problem
}

func (v *manifestValidator) add(field, format string, args ...any) {
	key := toml.Key(strings.Split(field, "."))
	v.probs = append(v.probs, Problem{Field: field, Line: TOMLKeyLine(v.data, key), Msg: fmt.Sprintf(format, args...)})
}

func (v *manifestValidator) validate(raw *manifestTOML, md toml.MetaData) *Manifest {
	in := raw.Info
	m := &Manifest{
		Name: Name(in.Name), Version: Version(in.Version),
		Description: in.Description, Author: in.Author,
		Hooks: Hooks{Install: raw.Hooks.Install, Remove: raw.Hooks.Remove},
		Files: FileRules{Config: raw.Files.Config, Setuid: raw.Files.Setuid},
	}
	if !md.IsDefined("Info") {
		v.add("Info", "missing [Info] table")
		return m
	}
	if err := m.Name.Validate(); err != nil {
		v.add("Info.name", "%v", err)
	}
	if err := m.Version.Validate(); err != nil {
		v.add("Info.version", "%v", err)
	}
	if f, err := ParseFamily(in.Family); err != nil {
		v.add("Info.family", "%v", err)
	} else {
		m.Family = f
	}
	switch {
	case in.Serial == nil:
		v.add("Info.serial", "missing (a non-negative integer that grows with every release)")
	case *in.Serial < 0:
		v.add("Info.serial", "%d is negative", *in.Serial)
	default:
		m.Serial = *in.Serial
	}
	if strings.ContainsFunc(in.Description, isControl) || strings.ContainsFunc(in.Author, isControl) {
		v.add("Info.description", "control characters are not allowed")
	}
	seen := map[Name]bool{}
	for _, s := range in.Dependencies {
		d, err := ParseDependency(s)
		switch {
		case err != nil:
			v.add("Info.dependencies", "%q: %v", s, err)
		case d.Name == m.Name:
			v.add("Info.dependencies", "%q: a package cannot depend on itself", s)
		case seen[d.Name]:
			v.add("Info.dependencies", "%q is listed twice", d.Name)
		default:
			seen[d.Name] = true
			m.Dependencies = append(m.Dependencies, d)
		}
	}
	if h := m.Hooks.Install; h != "" && h != InstallHook {
		v.add("Hooks.install", "%q: the install hook must be %q at the top of the archive", h, InstallHook)
	}
	if h := m.Hooks.Remove; h != "" && h != RemoveHook {
		v.add("Hooks.remove", "%q: the remove hook must be %q at the top of the archive", h, RemoveHook)
	}
	v.dataPaths("Files.config", m.Files.Config)
	v.dataPaths("Files.setuid", m.Files.Setuid)
	return m
}

func (v *manifestValidator) dataPaths(field string, paths []string) {
	for _, p := range paths {
		if !strings.HasPrefix(p, DataDir+"/") || path.Clean(p) != p || strings.Contains(p, "/../") || strings.ContainsFunc(p, isControl) {
			v.add(field, "%q must be a clean path under %s/", p, DataDir)
		}
	}
}

// Encode writes m as manifest.toml, the inverse of ParseManifest.
func (m *Manifest) Encode() []byte {
	var raw manifestTOML
	raw.Info.Name, raw.Info.Version = string(m.Name), string(m.Version)
	raw.Info.Description, raw.Info.Author = m.Description, m.Author
	raw.Info.Family, raw.Info.Serial = string(m.Family), &m.Serial
	raw.Info.Dependencies = []string{}
	for _, d := range m.Dependencies {
		raw.Info.Dependencies = append(raw.Info.Dependencies, d.String())
	}
	raw.Hooks.Install, raw.Hooks.Remove = m.Hooks.Install, m.Hooks.Remove
	raw.Files.Config, raw.Files.Setuid = m.Files.Config, m.Files.Setuid
	var b bytes.Buffer
	if err := toml.NewEncoder(&b).Encode(raw); err != nil {
		panic(err) // a struct of strings and ints always encodes
	}
	return b.Bytes()
}
