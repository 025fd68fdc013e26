package main

import (
	"strings"
	"testing"
)

func TestWrite(t *testing.T) {
	rs := []result{
		{Command: "floor", Median: 0.5, Min: 0.4, Max: 0.6, Times: []float64{0.4, 0.5, 0.6}},
		{Command: "packets", Median: 1.0, Min: 0.9, Max: 1.1, Times: []float64{0.9, 1.0, 1.1}},
		{Command: "pacman", Median: 4.0, Min: 4.0, Max: 4.0, Times: []float64{4}},
	}
	var b strings.Builder
	if err := write(&b, "W1", "packets", rs, "floor=1.2", "pacman=3", "floor=0.4"); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		"### W1\n",
		"| floor | 500.0 ms | 400.0 ms | 600.0 ms | 3 | 0.50× |",
		"| packets | 1.00 s | 900.0 ms | 1.10 s | 3 | 1.00× |",
		"| pacman | 4.00 s | 4.00 s | 4.00 s | 1 | 4.00× |",
		"packets ≤ 1.2× floor (is 2.00×): **missed**",
		"packets ≥ 3× faster than pacman (is 4.00×): met",
		"packets ≤ floor + 400.0 ms (is +500.0 ms): **missed**",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in\n%s", want, out)
		}
	}
}

func TestWriteRefuses(t *testing.T) {
	rs := []result{{Command: "packets", Median: 1}}
	for _, tt := range []struct{ subject, within string }{
		{"nobody", ""},         // no such subject
		{"packets", "floor=2"}, // a target naming a command that did not run
		{"packets", "floor"},   // no ratio
		{"packets", "floor=-1"},
	} {
		if err := write(&strings.Builder{}, "W", tt.subject, rs, tt.within, "", ""); err == nil {
			t.Errorf("subject %q, within %q: no error", tt.subject, tt.within)
		}
	}
}
