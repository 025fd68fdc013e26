package desired

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/function"
	"github.com/zclconf/go-cty/cty/function/stdlib"
)

// local is one value of a file's locals blocks.
type local struct {
	attr  *hclsyntax.Attribute
	val   cty.Value // cty.DynamicVal until evaluated, and when it has a problem
	state evalState
}

type evalState uint8

const (
	notEvaluated evalState = iota
	evaluating
	evaluated
)

// functions returns the functions state-file expressions may call. Those
// that can build large values from small ones refuse to exceed the value
// limits (see limits.go) before they allocate.
func functions() map[string]function.Function {
	return map[string]function.Function{
		"coalesce":  stdlib.CoalesceFunc,
		"concat":    bounded(stdlib.ConcatFunc, sumOfSizes),
		"format":    bounded(stdlib.FormatFunc, formatBound),
		"join":      bounded(stdlib.JoinFunc, joinBound),
		"lower":     stdlib.LowerFunc,
		"merge":     bounded(stdlib.MergeFunc, sumOfSizes),
		"trimspace": stdlib.TrimSpaceFunc,
		"upper":     stdlib.UpperFunc,
	}
}

// declareLocals records the values of a locals block; they are evaluated
// once every block of the file is known, since a local may refer to one
// declared further down.
func (d *decoder) declareLocals(b *hclsyntax.Block) {
	if len(b.Labels) > 0 {
		d.errorf(b.LabelRanges[0], "Extraneous label for locals",
			"A locals block has no labels: locals { name = value }.")
	}
	for _, nb := range b.Body.Blocks {
		d.errorf(nb.TypeRange, "Unsupported block type",
			"Blocks of type %q are not expected in a locals block, which holds only name = value arguments.", nb.Type)
	}
	for _, a := range sortedAttributes(b.Body.Attributes) {
		if prev := d.locals[a.Name]; prev != nil {
			d.errorf(a.NameRange, "Duplicate local value",
				"A local value named %q is already declared at %s; each local of a file needs its own name.",
				a.Name, rangePos(prev.attr.NameRange))
			continue
		}
		d.locals[a.Name] = &local{attr: a, val: cty.DynamicVal}
	}
}

// evalLocals evaluates every local in source order, so that the problems of
// unused locals are reported too.
func (d *decoder) evalLocals() {
	ls := make([]*local, 0, len(d.locals))
	for _, lc := range d.locals {
		ls = append(ls, lc)
	}
	slices.SortFunc(ls, func(a, b *local) int {
		return cmp.Compare(a.attr.SrcRange.Start.Byte, b.attr.SrcRange.Start.Byte)
	})
	for _, lc := range ls {
		d.evalLocal(lc.attr.Name, nil)
	}
}

// evalLocal returns the value of local name, evaluating it and the locals it
// refers to first. stack holds the locals being evaluated, to name a cycle.
func (d *decoder) evalLocal(name string, stack []string) cty.Value {
	lc := d.locals[name]
	switch lc.state {
	case evaluated:
		return lc.val
	case evaluating:
		chain := append(slices.Clone(stack[slices.Index(stack, name):]), name)
		d.errorf(lc.attr.NameRange, "Cycle in local values",
			"local.%s depends on itself: %s.", name, "local."+strings.Join(chain, " → local."))
		return cty.DynamicVal
	}
	lc.state = evaluating
	lc.val = d.eval(lc.attr.Expr, append(stack, name))
	lc.state = evaluated
	return lc.val
}

// eval checks what an expression refers to and uses, evaluates the locals it
// refers to, then the expression. On a problem it reports it and returns
// cty.DynamicVal, an unknown value that callers skip silently, so that one
// mistake is reported once and not again at every use.
func (d *decoder) eval(expr hclsyntax.Expression, stack []string) cty.Value {
	ok := d.checkSyntax(expr)
	refs := expr.Variables()
	ctx := d.noVars
	if len(refs) > 0 {
		vars := make(map[string]cty.Value, len(refs))
		for _, tr := range refs {
			name, good := d.localRef(tr)
			if !good {
				ok = false
				continue
			}
			vars[name] = d.evalLocal(name, stack)
		}
		ctx = &hcl.EvalContext{
			Variables: map[string]cty.Value{"local": cty.ObjectVal(vars)},
			Functions: d.funcs,
		}
	}
	if !ok {
		return cty.DynamicVal
	}
	v, diags := expr.Value(ctx)
	d.diags = append(d.diags, diags...)
	if diags.HasErrors() {
		return cty.DynamicVal
	}
	if err := d.spend(v); err != nil {
		d.errorf(expr.Range(), "Value too large", "%s.", err)
		return cty.DynamicVal
	}
	return v
}

// checkSyntax refuses the expressions a state file has no use for and that
// could make evaluation explode: for expressions (and template for
// directives, which are built on them) and number literals beyond the
// accepted magnitude.
func (d *decoder) checkSyntax(expr hclsyntax.Expression) bool {
	// Fast path for the common cases, a number or a plain quoted string.
	switch e := expr.(type) {
	case *hclsyntax.LiteralValueExpr:
		if err := checkNumber(e.Val); err != nil {
			d.errorf(e.SrcRange, "Number out of range", "%s.", err)
			return false
		}
		return true
	case *hclsyntax.TemplateExpr:
		if e.IsStringLiteral() {
			return true
		}
	}
	ok := true
	hclsyntax.VisitAll(expr, func(n hclsyntax.Node) hcl.Diagnostics {
		switch e := n.(type) {
		case *hclsyntax.ForExpr:
			d.errorf(e.SrcRange, "Unsupported expression",
				"for expressions are not supported in state files; write the values out.")
			ok = false
		case *hclsyntax.LiteralValueExpr:
			if err := checkNumber(e.Val); err != nil {
				d.errorf(e.SrcRange, "Number out of range", "%s.", err)
				ok = false
			}
		}
		return nil
	})
	return ok
}

// localRef returns the name of the local that a traversal refers to, after
// reporting why it refers to none.
func (d *decoder) localRef(tr hcl.Traversal) (string, bool) {
	if root := tr.RootName(); root != "local" {
		d.errorf(tr.SourceRange(), "Unknown variable",
			"There is no variable named %q; a state file can refer only to its own locals, as local.NAME.", root)
		return "", false
	}
	var name string
	if len(tr) > 1 {
		switch s := tr[1].(type) {
		case hcl.TraverseAttr:
			name = s.Name
		case hcl.TraverseIndex:
			if s.Key.Type() == cty.String && s.Key.IsKnown() && !s.Key.IsNull() {
				name = s.Key.AsString()
			}
		}
	}
	if name == "" {
		d.errorf(tr.SourceRange(), "Invalid reference",
			"A reference to a local value needs its name, as in local.NAME.")
		return "", false
	}
	if _, ok := d.locals[name]; !ok {
		detail := fmt.Sprintf("A local value named %q is not declared in this file (locals are visible only in the file that declares them).", name)
		if s := suggest(name, slices.Sorted(maps.Keys(d.locals))); s != "" {
			detail += fmt.Sprintf(" Did you mean %q?", s)
		}
		d.errorf(tr.SourceRange(), "Reference to undeclared local value", "%s", detail)
		return "", false
	}
	return name, true
}
