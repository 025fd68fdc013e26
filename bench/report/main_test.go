package main

import (
	"reflect"
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

// Exports of rounds join into one result per command: all its times, and
// the median, min and max of them all.
func TestJoin(t *testing.T) {
	rounds := [][]result{
		{{Command: "packets", Times: []float64{3}}, {Command: "pacman", Times: []float64{9}}},
		{{Command: "packets", Times: []float64{1}}, {Command: "pacman", Times: []float64{8}}},
		{{Command: "pacman", Times: []float64{7}}, {Command: "packets", Times: []float64{2, 4}}},
	}
	got := join(rounds)
	want := []result{
		{Command: "packets", Median: 2.5, Min: 1, Max: 4, Times: []float64{3, 1, 2, 4}},
		{Command: "pacman", Median: 8, Min: 7, Max: 9, Times: []float64{9, 8, 7}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("join = %+v, want %+v", got, want)
	}
}
