package desired

import (
	"fmt"
	"math/big"
	"strconv"
	"strings"
	"unicode"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"

	"github.com/packets-dev/packets/packages"
)

// typed evaluates a package attribute that must have type want. It reports
// false, silently, when the value is null (an unset attribute) or unknown (a
// problem already reported), and false after reporting any other type.
func (d *decoder) typed(a *hclsyntax.Attribute, want cty.Type) (cty.Value, bool) {
	v := d.eval(a.Expr, nil)
	if !v.IsWhollyKnown() || v.IsNull() {
		return cty.NilVal, false
	}
	if !v.Type().Equals(want) {
		detail := fmt.Sprintf("Inappropriate value for attribute %q: %s required, got %s.",
			a.Name, want.FriendlyName(), v.Type().FriendlyName())
		if want == cty.String && v.Type() == cty.Number {
			detail += fmt.Sprintf(" Quote it: %s = %q.", a.Name, v.AsBigFloat().Text('f', -1))
		}
		d.errorf(a.Expr.Range(), "Incorrect attribute value type", "%s", detail)
		return cty.NilVal, false
	}
	return v, true
}

// constraint decodes version, a string constraint such as ">= 1.2, < 2".
func (d *decoder) constraint(a *hclsyntax.Attribute) packages.Constraint {
	v, ok := d.typed(a, cty.String)
	if !ok {
		return packages.Constraint{}
	}
	c, err := packages.ParseConstraint(v.AsString())
	if err != nil {
		d.errorf(a.Expr.Range(), "Invalid version constraint",
			"%s; write a version (\"3.3.0\") or comparisons joined by commas (\">= 1.2, < 2\").", err)
	}
	return c
}

// ensure decodes ensure, "present" or "absent".
func (d *decoder) ensure(a *hclsyntax.Attribute) Ensure {
	v, ok := d.typed(a, cty.String)
	if !ok {
		return EnsurePresent
	}
	switch s := v.AsString(); s {
	case "present":
		return EnsurePresent
	case "absent":
		return EnsureAbsent
	default:
		detail := fmt.Sprintf("ensure must be \"present\" or \"absent\", not %q.", s)
		if sug := suggest(s, []string{"present", "absent"}); sug != "" {
			detail += fmt.Sprintf(" Did you mean %q?", sug)
		}
		d.errorf(a.Expr.Range(), "Invalid ensure value", "%s", detail)
		return EnsurePresent
	}
}

// repo decodes repo, the name of a configured repository.
func (d *decoder) repo(a *hclsyntax.Attribute) string {
	v, ok := d.typed(a, cty.String)
	if !ok {
		return ""
	}
	if err := ValidateRepoName(v.AsString()); err != nil {
		d.errorf(a.Expr.Range(), "Invalid repository name", "%s.", err)
		return ""
	}
	return v.AsString()
}

// options decodes options, an object whose values are strings, numbers or
// bools, kept in their string form. Null values count as not set.
func (d *decoder) options(a *hclsyntax.Attribute) map[string]string {
	v := d.eval(a.Expr, nil)
	if !v.IsWhollyKnown() || v.IsNull() {
		return nil
	}
	if ty := v.Type(); !ty.IsObjectType() && !ty.IsMapType() {
		d.errorf(a.Expr.Range(), "Incorrect attribute value type",
			"Inappropriate value for attribute \"options\": an object such as { workers = 4 } required, got %s.", ty.FriendlyName())
		return nil
	}
	where := itemRanges(a.Expr)
	out := make(map[string]string)
	for it := v.ElementIterator(); it.Next(); {
		k, e := it.Element()
		key := k.AsString()
		rng, ok := where[key]
		if !ok {
			rng = a.Expr.Range()
		}
		s, set, err := optionString(key, e)
		if err != nil {
			d.errorf(rng, "Invalid option", "%s.", err)
			continue
		}
		if set {
			out[key] = s
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// optionString converts one option to its string form; set is false for a
// null value.
func optionString(key string, v cty.Value) (s string, set bool, err error) {
	if key == "" || strings.ContainsFunc(key, unicode.IsControl) {
		return "", false, fmt.Errorf("option name %q is empty or holds control characters", key)
	}
	if v.IsNull() {
		return "", false, nil
	}
	switch v.Type() {
	case cty.String:
		return v.AsString(), true, nil
	case cty.Bool:
		return fmt.Sprint(v.True()), true, nil
	case cty.Number:
		// Integers are the common case, and cty's general conversion
		// (the shortest decimal of a 512-bit float) is slow.
		if f := v.AsBigFloat(); f.IsInt() {
			if i, acc := f.Int64(); acc == big.Exact {
				return strconv.FormatInt(i, 10), true, nil
			}
		}
		sv, err := convert.Convert(v, cty.String)
		if err != nil {
			return "", false, fmt.Errorf("option %q: %w", key, err)
		}
		return sv.AsString(), true, nil
	}
	return "", false, fmt.Errorf("option %q must be a string, number or bool, got %s", key, v.Type().FriendlyName())
}

// itemRanges maps the keys of an object written as a literal to the ranges
// of their values, so that a bad option is pointed at precisely.
func itemRanges(expr hclsyntax.Expression) map[string]hcl.Range {
	obj, ok := expr.(*hclsyntax.ObjectConsExpr)
	if !ok {
		return nil
	}
	out := make(map[string]hcl.Range, len(obj.Items))
	for _, item := range obj.Items {
		k, diags := item.KeyExpr.Value(nil)
		if diags.HasErrors() || !k.IsKnown() || k.IsNull() || k.Type() != cty.String {
			continue
		}
		out[k.AsString()] = item.ValueExpr.Range()
	}
	return out
}
