package desired

import (
	"bytes"
	"fmt"
	"os"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/hashicorp/hcl/v2/hclwrite"
	"github.com/zclconf/go-cty/cty"

	"github.com/packets-dev/packets/packages"
)

// newFileHeader starts a state file that AddPackage creates.
const newFileHeader = `# Desired state of this machine for packets: one package "NAME" {} block per
# package to keep installed; see version, hold, ensure, options and repo.
# packets install and packets remove edit this file and keep your comments.
`

// AddPackage declares name in file, creating the file (with a short header
// comment) when it is missing. A package that file does not declare gets a
// `package "NAME" {}` block at the end, with version = c when c is not zero.
// A package it already declares gets its version set to c when c is not zero
// (a zero c leaves an existing version alone) and loses an ensure that is not
// "present". Only that block changes; it reports whether the file changed.
// A file that does not parse is not touched: the error is an *Error.
//
// The caller chooses the file: FindDeclaration first, so that a package
// declared in a drop-in is edited there instead of declared twice. The edit
// reads, then replaces the file: writers must hold packets' lock.
func AddPackage(file string, name packages.Name, c packages.Constraint) (changed bool, err error) {
	if err := name.Validate(); err != nil {
		return false, err
	}
	path, src, err := readForEdit(file)
	if err != nil {
		return false, err
	}
	if src == nil {
		src = []byte(newFileHeader)
	}
	out, err := addToSource(file, src, name, c)
	if err != nil || bytes.Equal(out, src) {
		return false, err
	}
	if err := writeFileAtomic(path, out, 0o644); err != nil {
		return false, fmt.Errorf("add %s to %s: %w", name, file, err)
	}
	return true, nil
}

// RemovePackage deletes every block of file that declares name (there is
// one in a valid state) and nothing else: comments above the block stay, as
// they may head a whole section. It reports whether the file changed; a
// missing file, or one that does not declare name, is left alone. A file
// that does not parse is not touched: the error is an *Error.
func RemovePackage(file string, name packages.Name) (changed bool, err error) {
	if err := name.Validate(); err != nil {
		return false, err
	}
	path, src, err := readForEdit(file)
	if err != nil || src == nil {
		return false, err
	}
	out, err := removeFromSource(file, src, name)
	if err != nil || bytes.Equal(out, src) {
		return false, err
	}
	if err := writeFileAtomic(path, out, 0o644); err != nil {
		return false, fmt.Errorf("remove %s from %s: %w", name, file, err)
	}
	return true, nil
}

// FindDeclaration tells which of a machine's state files (as LoadMachine
// reads them) declares name, so that remove edits that file. Files that do
// not parse make it fail with an *Error: the package could be declared in
// them.
func FindDeclaration(mainFile, dropinDir string, name packages.Name) (file string, ok bool, err error) {
	files, err := machineFiles(mainFile, dropinDir)
	if err != nil {
		return "", false, err
	}
	e := &Error{Files: make(map[string]*hcl.File)}
	for _, f := range files {
		src, err := os.ReadFile(f)
		if err != nil {
			return "", false, fmt.Errorf("desired state: %w", err)
		}
		hf, diags := hclsyntax.ParseConfig(src, f, hcl.InitialPos)
		e.Files[f] = hf
		e.Diags = append(e.Diags, diags...)
		if !diags.HasErrors() && file == "" && len(packageBlocks(hf, name)) > 0 {
			file = f
		}
	}
	if e.Diags.HasErrors() {
		return "", false, e
	}
	return file, file != "", nil
}

// addToSource returns src with name declared, as AddPackage describes.
func addToSource(filename string, src []byte, name packages.Name, c packages.Constraint) ([]byte, error) {
	f, err := parseForEdit(filename, src)
	if err != nil {
		return nil, err
	}
	var out []byte
	if blocks := packageBlocks(f, name); len(blocks) == 0 {
		out = appendBlock(src, name, c)
	} else if out, err = editBlock(filename, src, blocks[0], c); err != nil {
		return nil, err
	}
	// The result must still parse; anything else is a bug here.
	if _, err := parseForEdit(filename, out); err != nil {
		return nil, fmt.Errorf("add %s to %s: the edit would break the file: %w", name, filename, err)
	}
	return out, nil
}

// appendBlock adds a new package block at the end of src, after a blank
// line.
func appendBlock(src []byte, name packages.Name, c packages.Constraint) []byte {
	text := fmt.Sprintf("package %q {}\n", name)
	if !c.IsZero() {
		f := hclwrite.NewEmptyFile()
		f.Body().AppendNewBlock("package", []string{string(name)}).
			Body().SetAttributeValue("version", cty.StringVal(c.String()))
		text = string(f.Bytes())
	}
	out := bytes.Clone(src)
	switch {
	case len(bytes.TrimSpace(src)) == 0:
		out = nil // nothing but blanks: start afresh
	case !bytes.HasSuffix(src, []byte("\n")):
		text = "\n\n" + text
	case !bytes.HasSuffix(bytes.ReplaceAll(src, []byte("\r\n"), []byte("\n")), []byte("\n\n")):
		text = "\n" + text
	}
	return append(out, newlines(src, text)...)
}

// editBlock updates an existing package block: its version, and an ensure
// that is not "present". The block is rewritten with hclwrite and formatted
// canonically; everything outside it is kept byte for byte.
func editBlock(filename string, src []byte, b *hclsyntax.Block, c packages.Constraint) ([]byte, error) {
	setVersion := !c.IsZero() && !sameConstraint(b.Body.Attributes["version"], c)
	dropEnsure := b.Body.Attributes["ensure"] != nil && !isLiteral(b.Body.Attributes["ensure"], "present")
	if !setVersion && !dropEnsure {
		return src, nil
	}
	start, end := b.Range().Start.Byte, b.Range().End.Byte
	text := bytes.Clone(src[start:end])
	if b.OpenBraceRange.Start.Line == b.CloseBraceRange.Start.Line {
		// A one-line block cannot take a second argument: open it up first.
		open, closing := b.OpenBraceRange.End.Byte-start, b.CloseBraceRange.Start.Byte-start
		opened := append(bytes.Clone(text[:open]), '\n')
		if inner := bytes.TrimSpace(text[open:closing]); len(inner) > 0 {
			opened = append(append(opened, inner...), '\n')
		}
		text = append(opened, text[closing:]...)
	}
	wf, diags := hclwrite.ParseConfig(text, filename, hcl.InitialPos)
	if diags.HasErrors() || len(wf.Body().Blocks()) != 1 {
		return nil, fmt.Errorf("edit %s: rewrite block %s: %w", filename, rangePos(b.DefRange()), diags)
	}
	body := wf.Body().Blocks()[0].Body()
	if setVersion {
		body.SetAttributeValue("version", cty.StringVal(c.String()))
	}
	if dropEnsure {
		body.RemoveAttribute("ensure")
	}
	edited := bytes.TrimRight(wf.Bytes(), "\n")
	if isEmptyBody(body) {
		edited = fmt.Appendf(nil, "package %q {}", b.Labels[0])
	}
	out := make([]byte, 0, len(src)+len(edited))
	out = append(out, src[:start]...)
	out = append(out, newlines(src, string(edited))...)
	return append(out, src[end:]...), nil
}

// isEmptyBody reports whether a block body holds nothing but line ends.
func isEmptyBody(body *hclwrite.Body) bool {
	for _, tok := range body.BuildTokens(nil) {
		if tok.Type != hclsyntax.TokenNewline {
			return false
		}
	}
	return true
}

// sameConstraint reports whether a version attribute is a literal string
// that means c.
func sameConstraint(a *hclsyntax.Attribute, c packages.Constraint) bool {
	if a == nil {
		return false
	}
	v, diags := a.Expr.Value(nil)
	if diags.HasErrors() || v.Type() != cty.String || v.IsNull() {
		return false
	}
	have, err := packages.ParseConstraint(v.AsString())
	return err == nil && have.String() == c.String()
}

// isLiteral reports whether an attribute is the literal string s.
func isLiteral(a *hclsyntax.Attribute, s string) bool {
	v, diags := a.Expr.Value(nil)
	return !diags.HasErrors() && v.Type() == cty.String && !v.IsNull() && v.AsString() == s
}

// parseForEdit parses a file that is about to be edited; a file with syntax
// errors is refused, since edits need its exact structure.
func parseForEdit(filename string, src []byte) (*hcl.File, error) {
	f, diags := hclsyntax.ParseConfig(src, filename, hcl.InitialPos)
	if diags.HasErrors() {
		return nil, &Error{Diags: diags, Files: map[string]*hcl.File{filename: f}}
	}
	return f, nil
}

// packageBlocks returns the top-level blocks of f that declare name.
func packageBlocks(f *hcl.File, name packages.Name) []*hclsyntax.Block {
	body, ok := f.Body.(*hclsyntax.Body)
	if !ok {
		return nil
	}
	var out []*hclsyntax.Block
	for _, b := range body.Blocks {
		if b.Type == "package" && len(b.Labels) == 1 && b.Labels[0] == string(name) {
			out = append(out, b)
		}
	}
	return out
}

// newlines converts text's line ends to the style of src (CRLF when src
// uses it).
func newlines(src []byte, text string) []byte {
	out := bytes.ReplaceAll([]byte(text), []byte("\r\n"), []byte("\n"))
	if bytes.Contains(src, []byte("\r\n")) {
		out = bytes.ReplaceAll(out, []byte("\n"), []byte("\r\n"))
	}
	return out
}

// ParseSpec parses a command-line package argument, NAME or
// NAME@CONSTRAINT ("ripgrep", "ripgrep@14.1.0", "ripgrep@>=14, <15"), as
// packets install takes it.
func ParseSpec(arg string) (packages.Name, packages.Constraint, error) {
	name, rest, hasAt := strings.Cut(arg, "@")
	n, err := packages.ParseName(name)
	if err != nil {
		return "", packages.Constraint{}, err
	}
	if !hasAt {
		return n, packages.Constraint{}, nil
	}
	if strings.TrimSpace(rest) == "" {
		return "", packages.Constraint{}, fmt.Errorf("%q: no constraint after @", arg)
	}
	c, err := packages.ParseConstraint(rest)
	if err != nil {
		return "", packages.Constraint{}, fmt.Errorf("%q: %w", arg, err)
	}
	return n, c, nil
}
