package desired

import (
	"errors"
	"fmt"
	"math"
	"math/big"
	"strconv"

	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/function"
)

// A state file is written by an administrator, but the watch loop re-reads
// it on every save and the fuzz test feeds it garbage, so evaluation must
// stay proportionate to the file: HCL templates and functions can build
// values far larger than their source (a chain of locals that each double a
// string, a format width of a billion, a number whose decimal form has a
// billion digits). These limits are far beyond any real state file.
const (
	// maxValueSize bounds one value: bytes of strings plus elements.
	maxValueSize = 64 << 10
	// maxFileValues bounds the sum of every value a file evaluates.
	maxFileValues = 16 << 20
	// maxNumberExp bounds numbers to magnitudes in [2^-60, 2^60) (about
	// 1e-18 to 1e18), and zero, so their decimal form stays short.
	maxNumberExp = 60
	// maxFormatWidth bounds the widths and precisions of format verbs.
	maxFormatWidth = 1000
)

func errValueTooLarge() error {
	return fmt.Errorf("the value is larger than %d bytes and elements", maxValueSize)
}

// spend charges a value to the file's budget.
func (d *decoder) spend(v cty.Value) error {
	n, err := valueSize(v, maxValueSize)
	if err != nil {
		return err
	}
	d.spent += n
	if d.spent > maxFileValues {
		return fmt.Errorf("the values of this file add up to more than %d bytes and elements", maxFileValues)
	}
	return nil
}

// valueSize measures v as bytes of strings plus elements, giving up past
// limit, and checks its numbers. Unknown values measure zero.
func valueSize(v cty.Value, limit int) (int, error) {
	if !v.IsKnown() || v.IsNull() {
		return 0, nil
	}
	ty := v.Type()
	switch {
	case ty == cty.String:
		if n := len(v.AsString()); n > limit {
			return 0, errValueTooLarge()
		} else {
			return n, nil
		}
	case ty == cty.Number:
		return 1, checkNumber(v)
	case ty.IsCollectionType() || ty.IsObjectType() || ty.IsTupleType():
		total := 0
		for it := v.ElementIterator(); it.Next(); {
			k, e := it.Element()
			n, err := valueSize(e, limit-total)
			if err != nil {
				return 0, err
			}
			total += n + 1
			if k.Type() == cty.String {
				total += len(k.AsString())
			}
			if total > limit {
				return 0, errValueTooLarge()
			}
		}
		return total, nil
	}
	return 1, nil
}

// checkNumber refuses numbers whose decimal form would be huge: HCL turns
// numbers into strings in templates and options.
func checkNumber(v cty.Value) error {
	if v.Type() != cty.Number || !v.IsKnown() || v.IsNull() {
		return nil
	}
	f := v.AsBigFloat()
	if f.IsInf() {
		return errors.New("infinite numbers are not allowed")
	}
	if f.Sign() == 0 {
		return nil
	}
	if exp := f.MantExp(nil); exp > maxNumberExp || exp < -maxNumberExp {
		// Never print f itself: the decimal form of a huge big.Float
		// takes minutes to compute.
		about := fmt.Sprintf("a number around 1e%+d", int(float64(exp)*math.Log10(2)))
		if x, _ := f.Float64(); x != 0 && !math.IsInf(x, 0) {
			about = strconv.FormatFloat(x, 'g', 6, 64)
		}
		return fmt.Errorf("%s is outside the supported range of magnitudes 1e-18 to 1e18", about)
	}
	return nil
}

// bounded wraps a function with a check of its arguments that runs before
// the function allocates its result.
func bounded(f function.Function, check func(args []cty.Value) error) function.Function {
	return function.New(&function.Spec{
		Description: f.Description(),
		Params:      f.Params(),
		VarParam:    f.VarParam(),
		Type:        f.ReturnTypeForValues,
		Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
			if err := check(args); err != nil {
				return cty.NilVal, err
			}
			return f.Call(args)
		},
	})
}

// sumOfSizes bounds functions whose result is at most as large as all their
// arguments together (concat, merge).
func sumOfSizes(args []cty.Value) error {
	total := 0
	for _, a := range args {
		n, err := valueSize(a, maxValueSize-total)
		if err != nil {
			return err
		}
		if total += n; total > maxValueSize {
			return errValueTooLarge()
		}
	}
	return nil
}

// joinBound bounds join(sep, lists...): every element plus a separator.
func joinBound(args []cty.Value) error {
	if err := sumOfSizes(args[1:]); err != nil {
		return err
	}
	if !args[0].IsKnown() || args[0].IsNull() {
		return nil
	}
	sep, n := len(args[0].AsString()), 0
	for _, l := range args[1:] {
		if l.IsKnown() && !l.IsNull() {
			n += l.LengthInt()
		}
	}
	if sep*n > maxValueSize {
		return errValueTooLarge()
	}
	return nil
}

// formatBound bounds format(spec, args...): the arguments, and every width
// or precision in spec.
func formatBound(args []cty.Value) error {
	if err := sumOfSizes(args[1:]); err != nil {
		return err
	}
	if !args[0].IsKnown() || args[0].IsNull() {
		return nil
	}
	spec := args[0].AsString()
	for i := 0; i < len(spec); i++ {
		if spec[i] < '0' || spec[i] > '9' {
			continue
		}
		j := i
		for j < len(spec) && spec[j] >= '0' && spec[j] <= '9' {
			j++
		}
		if w, ok := new(big.Int).SetString(spec[i:j], 10); ok && w.Cmp(big.NewInt(maxFormatWidth)) > 0 && inVerb(spec, i) {
			return fmt.Errorf("format widths and precisions are limited to %d", maxFormatWidth)
		}
		i = j
	}
	return nil
}

// inVerb reports whether byte i of a format spec lies inside a verb, between
// a '%' and the verb letter.
func inVerb(spec string, i int) bool {
	for k := i - 1; k >= 0; k-- {
		switch c := spec[k]; {
		case c == '%':
			// "%%" is a literal percent sign: count the run of them.
			run := 0
			for m := k; m >= 0 && spec[m] == '%'; m-- {
				run++
			}
			return run%2 == 1
		case c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z':
			return false
		}
	}
	return false
}
