package desired

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/function"

	"github.com/packets-dev/packets/packages"
)

// topLevelBlocks lists the block types of a state file, in the order
// messages list them.
func topLevelBlocks() []string { return []string{"package", "locals"} }

// packageAttributes lists the arguments of a package block, in the order
// messages list them.
func packageAttributes() []string { return []string{"version", "hold", "ensure", "options", "repo"} }

// declared is one package block with a valid name (possibly with problems).
type declared struct {
	want Want
	def  hcl.Range // the block's type and label, for duplicate messages
}

// decoder validates one file's body.
type decoder struct {
	locals map[string]*local
	funcs  map[string]function.Function
	noVars *hcl.EvalContext // for expressions that refer to nothing
	spent  int              // see limits.go
	diags  hcl.Diagnostics
}

// decodeFile turns a parsed state file into the packages it declares, in
// source order, and every problem found.
func decodeFile(body *hclsyntax.Body, funcs map[string]function.Function) ([]declared, hcl.Diagnostics) {
	d := &decoder{locals: make(map[string]*local), funcs: funcs}
	d.noVars = &hcl.EvalContext{
		Variables: map[string]cty.Value{"local": cty.EmptyObjectVal},
		Functions: funcs,
	}
	for _, a := range sortedAttributes(body.Attributes) {
		d.errorf(a.NameRange, "Unsupported argument",
			"An argument named %q is not expected at the top level of a state file, which holds only package \"NAME\" {...} and locals {...} blocks.", a.Name)
	}
	var pkgs []*hclsyntax.Block
	for _, b := range body.Blocks {
		switch b.Type {
		case "package":
			pkgs = append(pkgs, b)
		case "locals":
			d.declareLocals(b)
		default:
			d.unsupportedBlock(b, "at the top level of a state file", topLevelBlocks(), nil)
		}
	}
	d.evalLocals()
	var out []declared
	for _, b := range pkgs {
		// A block with problems still declares its name, so that a
		// duplicate is reported too; the state is discarded anyway.
		if w := d.decodePackage(b); w.Name != "" {
			out = append(out, declared{want: w, def: b.DefRange()})
		}
	}
	return out, d.diags
}

func subjectOffset(d *hcl.Diagnostic) int {
	if d.Subject == nil {
		return -1
	}
	return d.Subject.Start.Byte
}

// decodePackage validates one package block, recording every problem it
// has. The name is empty when the label is missing or invalid.
func (d *decoder) decodePackage(b *hclsyntax.Block) Want {
	w := Want{Pos: Pos{File: b.TypeRange.Filename, Line: b.TypeRange.Start.Line, Col: b.TypeRange.Start.Column}}
	w.Name = d.packageLabel(b)
	for _, nb := range b.Body.Blocks {
		d.unsupportedBlock(nb, "in a package block", nil, packageAttributes())
	}
	attrs := b.Body.Attributes // the problems are sorted by position later
	known := packageAttributes()
	for _, a := range attrs {
		if !slices.Contains(known, a.Name) {
			d.unsupportedArgument(a)
		}
	}
	if a := attrs["version"]; a != nil {
		w.Constraint = d.constraint(a)
	}
	if a := attrs["hold"]; a != nil {
		if v, ok := d.typed(a, cty.Bool); ok {
			w.Hold = v.True()
		}
	}
	if a := attrs["ensure"]; a != nil {
		w.Ensure = d.ensure(a)
	}
	if a := attrs["repo"]; a != nil {
		w.Repo = d.repo(a)
	}
	if a := attrs["options"]; a != nil {
		w.Options = d.options(a)
	}
	if w.Ensure == EnsureAbsent {
		if w.Hold {
			d.errorf(attrs["hold"].SrcRange, "Conflicting attributes",
				"hold = true keeps a package installed, but ensure = \"absent\" (at %s) removes it; drop one of them.", rangePos(attrs["ensure"].SrcRange))
		}
		if !w.Constraint.IsZero() {
			d.errorf(attrs["version"].SrcRange, "Conflicting attributes",
				"version constrains what to install, but ensure = \"absent\" (at %s) removes the package; drop one of them.", rangePos(attrs["ensure"].SrcRange))
		}
	}
	return w
}

// packageLabel returns the package name of a block, or "" after reporting
// why it has none.
func (d *decoder) packageLabel(b *hclsyntax.Block) packages.Name {
	switch {
	case len(b.Labels) == 0:
		d.errorf(b.TypeRange, "Missing package name",
			"A package block needs exactly one label, the package name, as in package \"htop\" {}.")
		return ""
	case len(b.Labels) > 1:
		d.errorf(b.LabelRanges[1], "Extraneous label for package",
			"A package block has exactly one label, the package name; %q is one too many.", b.Labels[1])
	}
	n := packages.Name(b.Labels[0])
	if err := n.Validate(); err != nil {
		d.errorf(b.LabelRanges[0], "Invalid package name", "%s.", err)
		return ""
	}
	return n
}

// unsupportedBlock reports a block that is not allowed where it is. When
// its type names an argument, the user probably forgot the equals sign.
func (d *decoder) unsupportedBlock(b *hclsyntax.Block, where string, blocks, args []string) {
	detail := fmt.Sprintf("Blocks of type %q are not expected %s.", b.Type, where)
	switch {
	case slices.Contains(args, b.Type):
		detail += fmt.Sprintf(" Did you mean to set the argument %q? If so, use the equals sign: %s = ...", b.Type, b.Type)
	case suggest(b.Type, blocks) != "":
		detail += fmt.Sprintf(" Did you mean %q?", suggest(b.Type, blocks))
	case len(blocks) > 0:
		detail += fmt.Sprintf(" The block types are %s.", quotedList(blocks))
	}
	d.errorf(b.TypeRange, "Unsupported block type", "%s", detail)
}

// unsupportedArgument reports an unknown attribute of a package block.
func (d *decoder) unsupportedArgument(a *hclsyntax.Attribute) {
	detail := fmt.Sprintf("An argument named %q is not expected in a package block.", a.Name)
	if s := suggest(a.Name, packageAttributes()); s != "" {
		detail += fmt.Sprintf(" Did you mean %q?", s)
	} else {
		detail += fmt.Sprintf(" The arguments are %s.", quotedList(packageAttributes()))
	}
	d.errorf(a.NameRange, "Unsupported argument", "%s", detail)
}

func (d *decoder) errorf(subject hcl.Range, summary, format string, args ...any) {
	d.diags = append(d.diags, &hcl.Diagnostic{
		Severity: hcl.DiagError,
		Summary:  summary,
		Detail:   fmt.Sprintf(format, args...),
		Subject:  subject.Ptr(),
	})
}

// sortedAttributes returns a body's attributes in source order (the parser
// keeps them in a map).
func sortedAttributes(attrs hclsyntax.Attributes) []*hclsyntax.Attribute {
	out := make([]*hclsyntax.Attribute, 0, len(attrs))
	for _, a := range attrs {
		out = append(out, a)
	}
	slices.SortFunc(out, func(a, b *hclsyntax.Attribute) int {
		return cmp.Compare(a.SrcRange.Start.Byte, b.SrcRange.Start.Byte)
	})
	return out
}

// quotedList formats names as `"a", "b" and "c"`.
func quotedList(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = fmt.Sprintf("%q", n)
	}
	if len(q) < 2 {
		return strings.Join(q, "")
	}
	return strings.Join(q[:len(q)-1], ", ") + " and " + q[len(q)-1]
}
