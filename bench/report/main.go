// Command report turns hyperfine JSON exports into a Markdown section: the
// median, min and max of every command, its ratio to packets, and whether
// packets met the workload's targets. Given several exports (bench/run.sh
// runs the commands of a workload in rounds, one run of each per round, so
// that a drift of the machine weighs on all of them alike), it joins each
// command's times across them.
//
//	report -title "W1 ..." [-within floor=1.2] [-faster pacman=3,dpkg=5] [-over NAME=SECONDS] FILE.json...
//
// -within NAME=R: packets' median must be at most R times NAME's.
// -faster NAME=R: NAME's median must be at least R times packets'.
// -over NAME=S: packets' median must be at most S seconds over NAME's.
// The command named "packets" (hyperfine --command-name) is the subject.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
)

type result struct {
	Command string    `json:"command"`
	Median  float64   `json:"median"`
	Min     float64   `json:"min"`
	Max     float64   `json:"max"`
	Times   []float64 `json:"times"`
}

func main() {
	title := flag.String("title", "", "the section's title")
	within := flag.String("within", "", "NAME=R,...: packets at most R× NAME")
	faster := flag.String("faster", "", "NAME=R,...: packets at least R× faster than NAME")
	over := flag.String("over", "", "NAME=SECONDS,...: packets at most SECONDS slower than NAME")
	subject := flag.String("subject", "packets", "the command the ratios and targets are about")
	flag.Parse()
	if flag.NArg() == 0 {
		flag.Usage()
		os.Exit(2)
	}
	var exports [][]result
	for _, name := range flag.Args() {
		var doc struct{ Results []result }
		b, err := os.ReadFile(name)
		if err != nil {
			log.Fatal(err)
		}
		if err := json.Unmarshal(b, &doc); err != nil {
			log.Fatalf("%s: %v", name, err)
		}
		exports = append(exports, doc.Results)
	}
	rs := exports[0]
	if len(exports) > 1 {
		rs = join(exports)
	}
	if err := write(os.Stdout, *title, *subject, rs, *within, *faster, *over); err != nil {
		log.Fatalf("report: %v", err)
	}
}

// join puts together the times of each command across exports, in the
// order commands first appear, and takes their median, min and max anew.
func join(exports [][]result) []result {
	var out []result
	at := map[string]int{}
	for _, rs := range exports {
		for _, r := range rs {
			i, ok := at[r.Command]
			if !ok {
				i = len(out)
				at[r.Command] = i
				out = append(out, result{Command: r.Command})
			}
			out[i].Times = append(out[i].Times, r.Times...)
		}
	}
	for i := range out {
		t := slices.Sorted(slices.Values(out[i].Times))
		if n := len(t); n > 0 {
			out[i].Min, out[i].Max = t[0], t[n-1]
			out[i].Median = (t[(n-1)/2] + t[n/2]) / 2
		}
	}
	return out
}

func write(w io.Writer, title, subject string, rs []result, within, faster, over string) error {
	by := map[string]result{}
	for _, r := range rs {
		by[r.Command] = r
	}
	me, ok := by[subject]
	if !ok {
		return fmt.Errorf("no command named %q in the export", subject)
	}
	fmt.Fprintf(w, "### %s\n\n| command | median | min | max | runs | median ÷ %s's |\n|---|---:|---:|---:|---:|---:|\n", title, subject)
	for _, r := range rs {
		fmt.Fprintf(w, "| %s | %s | %s | %s | %d | %.2f× |\n", r.Command, dur(r.Median), dur(r.Min), dur(r.Max), len(r.Times), r.Median/me.Median)
	}
	var verdicts []string
	check := func(spec string, ok func(other result, r float64) (bool, string)) error {
		targets, err := parseTargets(spec)
		if err != nil {
			return err
		}
		for _, t := range targets {
			other, found := by[t.name]
			if !found {
				return fmt.Errorf("target names %q, which did not run", t.name)
			}
			pass, text := ok(other, t.ratio)
			mark := "met"
			if !pass {
				mark = "**missed**"
			}
			verdicts = append(verdicts, fmt.Sprintf("%s: %s", text, mark))
		}
		return nil
	}
	if err := check(within, func(o result, r float64) (bool, string) {
		got := me.Median / o.Median
		return got <= r, fmt.Sprintf("%s ≤ %.2g× %s (is %.2f×)", subject, r, o.Command, got)
	}); err != nil {
		return err
	}
	if err := check(faster, func(o result, r float64) (bool, string) {
		got := o.Median / me.Median
		return got >= r, fmt.Sprintf("%s ≥ %.2g× faster than %s (is %.2f×)", subject, r, o.Command, got)
	}); err != nil {
		return err
	}
	if err := check(over, func(o result, s float64) (bool, string) {
		got := me.Median - o.Median
		sign := "+"
		if got < 0 {
			sign = "−"
		}
		return got <= s, fmt.Sprintf("%s ≤ %s + %s (is %s%s)", subject, o.Command, dur(s), sign, dur(math.Abs(got)))
	}); err != nil {
		return err
	}
	if len(verdicts) > 0 {
		fmt.Fprintf(w, "\nTargets: %s.\n", strings.Join(verdicts, "; "))
	}
	fmt.Fprintln(w)
	return nil
}

type target struct {
	name  string
	ratio float64
}

func parseTargets(spec string) ([]target, error) {
	var ts []target
	for _, part := range strings.Split(spec, ",") {
		if part == "" {
			continue
		}
		name, r, ok := strings.Cut(part, "=")
		f, err := strconv.ParseFloat(r, 64)
		if !ok || err != nil || f <= 0 {
			return nil, fmt.Errorf("target %q: want NAME=RATIO", part)
		}
		ts = append(ts, target{name, f})
	}
	return ts, nil
}

// dur formats seconds as a rounded duration: 1.53 s, 23.1 ms.
func dur(s float64) string {
	d := time.Duration(s * float64(time.Second))
	switch {
	case d >= time.Second:
		return fmt.Sprintf("%.2f s", d.Seconds())
	case d >= time.Millisecond:
		return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond))
	}
	return fmt.Sprintf("%.0f µs", float64(d)/float64(time.Microsecond))
}
