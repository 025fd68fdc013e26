package desired

import (
	"cmp"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty/function"

	"github.com/packets-dev/packets/packages"
)

// Load reads the desired state from path: one state file, or a directory
// whose *.hcl files are read in lexical order. A missing path is an error
// (the caller named it); a directory without state files is an empty state.
// Problems in the files are reported together as an *Error; I/O errors are
// returned as they are, wrapped.
func Load(path string) (State, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return State{}, fmt.Errorf("desired state: %w", err)
	}
	files := []string{path}
	if fi.IsDir() {
		if files, err = stateFiles(path); err != nil {
			return State{}, err
		}
	}
	l := newLoader()
	for _, f := range files {
		if err := l.readFile(f); err != nil {
			return State{}, err
		}
	}
	return l.result()
}

// LoadMachine reads a machine's desired state: mainFile
// (/etc/packets/state.hcl), then the *.hcl files of dropinDir
// (/etc/packets/state.d) in lexical order. Either may be missing; when both
// are, the state is empty, which is valid. A package declared in two places
// is an error naming both.
func LoadMachine(mainFile, dropinDir string) (State, error) {
	s, _, _, err := LoadMachineMemo(mainFile, dropinDir, Memo{})
	return s, err
}

// machineFiles lists the existing state files of a machine, main file first.
func machineFiles(mainFile, dropinDir string) ([]string, error) {
	var files []string
	switch fi, err := os.Stat(mainFile); {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return nil, fmt.Errorf("desired state: %w", err)
	case fi.IsDir():
		return nil, fmt.Errorf("desired state: %s is a directory, not a state file", mainFile)
	default:
		files = append(files, mainFile)
	}
	if dropinDir == "" {
		return files, nil
	}
	dropins, err := stateFiles(dropinDir)
	if errors.Is(err, fs.ErrNotExist) {
		return files, nil
	}
	if err != nil {
		return nil, err
	}
	return append(files, dropins...), nil
}

// stateFiles lists the state files of dir in lexical order: regular files
// (or links to them) named *.hcl, except hidden ones, which is where editors
// keep their locks and swap files (.#state.hcl, .state.hcl.swp) and where
// packets keeps its temporary files while it writes.
func stateFiles(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir) // sorted by name
	if err != nil {
		return nil, fmt.Errorf("desired state: %w", err)
	}
	var files []string
	for _, e := range entries {
		name := e.Name()
		if !isStateFileName(name) {
			continue
		}
		p := filepath.Join(dir, name)
		fi, err := os.Stat(p) // follows links: a link to a state file counts
		if errors.Is(err, fs.ErrNotExist) {
			continue // a dangling link, or a file removed since ReadDir
		}
		if err != nil {
			return nil, fmt.Errorf("desired state: %w", err)
		}
		if fi.Mode().IsRegular() {
			files = append(files, p)
		}
	}
	return files, nil
}

// isStateFileName reports whether a directory entry named name is read as a
// state file.
func isStateFileName(name string) bool {
	return strings.HasSuffix(name, ".hcl") && len(name) > len(".hcl") && !strings.HasPrefix(name, ".")
}

// loader accumulates the files of one state and every problem found in them.
type loader struct {
	state State
	files map[string]*hcl.File
	where map[packages.Name]hcl.Range // where each package was declared
	funcs map[string]function.Function
	diags hcl.Diagnostics
}

func newLoader() *loader {
	return &loader{
		state: State{Packages: make(map[packages.Name]Want)},
		files: make(map[string]*hcl.File),
		where: make(map[packages.Name]hcl.Range),
		funcs: functions(),
	}
}

func (l *loader) readFile(name string) error {
	src, err := os.ReadFile(name)
	if err != nil {
		return fmt.Errorf("desired state: %w", err)
	}
	l.addFile(name, src)
	return nil
}

// addFile parses and validates one file and merges its packages. A file with
// syntax errors contributes only those: validating a half-parsed body would
// report problems that are not there.
func (l *loader) addFile(name string, src []byte) {
	f, diags := hclsyntax.ParseConfig(src, name, hcl.InitialPos)
	l.files[name] = f
	l.state.Files = append(l.state.Files, name)
	if diags.HasErrors() {
		l.diags = append(l.diags, diags...)
		return
	}
	body, ok := f.Body.(*hclsyntax.Body)
	if !ok { // hclsyntax always returns its own body type
		panic(fmt.Sprintf("desired: hclsyntax returned a %T body", f.Body))
	}
	decls, diags := decodeFile(body, l.funcs)
	for _, d := range decls {
		if prev, dup := l.where[d.want.Name]; dup {
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Duplicate package",
				Detail: fmt.Sprintf("package %q is already declared at %s; declare each package once across the state files.",
					d.want.Name, rangePos(prev)),
				Subject: d.def.Ptr(),
			})
			continue
		}
		l.where[d.want.Name] = d.def
		l.state.Packages[d.want.Name] = d.want
	}
	// Report in reading order: the decoder works block kind by block kind.
	slices.SortStableFunc(diags, func(a, b *hcl.Diagnostic) int {
		return cmp.Compare(subjectOffset(a), subjectOffset(b))
	})
	l.diags = append(l.diags, diags...)
}

func (l *loader) result() (State, error) {
	if l.diags.HasErrors() {
		return State{}, &Error{Diags: l.diags, Files: l.files}
	}
	return l.state, nil
}

// rangePos formats where r starts as "FILE:LINE:COL".
func rangePos(r hcl.Range) string {
	return Pos{File: r.Filename, Line: r.Start.Line, Col: r.Start.Column}.String()
}
