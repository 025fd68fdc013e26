package reconcile

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/packets-dev/packets/packages"
)

// String renders the plan for people, as DESIGN.md §7 shows it:
//
//	Plan: 2 to install, 1 to upgrade, 1 to remove.
//
//	  + ncurses  6.4                (dependency of htop)
//	  ~ ripgrep  14.0.0 -> 14.1.0   state.hcl:5 (serial 7 -> 9)
func (p *Plan) String() string {
	var b strings.Builder
	p.Render(&b, false)
	return b.String()
}

// Render writes the plan for people to w, with ANSI colour when color is set.
// It buffers: the tabwriter writes each cell and its padding on its own, a
// system call each to an unbuffered stdout (1,200 for 200 actions).
func (p *Plan) Render(out io.Writer, color bool) {
	w := bufio.NewWriter(out)
	defer w.Flush()
	for _, warn := range p.Warnings {
		fmt.Fprintf(w, "Warning: %s\n", warn)
	}
	if !p.Changes() {
		fmt.Fprintln(w, "No changes. The machine matches the state.")
		return
	}
	fmt.Fprintf(w, "Plan: %s.\n\n", p.summary())
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, a := range p.Actions {
		sym := a.Kind.Symbol()
		if color {
			sym = colorFor(a.Kind) + sym + "\x1b[0m"
		}
		fmt.Fprintf(tw, "  %s %s\t%s\t%s\n", sym, a.Name, a.versions(), a.why())
	}
	tw.Flush()
	if n := p.DownloadSize(); n > 0 {
		fmt.Fprintf(w, "\nDownload: %s.\n", HumanBytes(n))
	}
}

func (p *Plan) summary() string {
	parts := []string{}
	add := func(n int, what string) {
		if n > 0 {
			parts = append(parts, fmt.Sprintf("%d to %s", n, what))
		}
	}
	add(p.Count(Install), "install")
	add(p.Count(Upgrade), "upgrade")
	add(p.Count(Downgrade), "downgrade")
	add(p.Count(Reinstall), "reinstall")
	add(p.Count(Remove), "remove")
	add(p.Count(Mark), "mark")
	return strings.Join(parts, ", ")
}

func (a *Action) versions() string {
	switch {
	case a.Kind == Mark || a.Kind == Remove:
		return string(a.From.Version)
	case a.From == nil || a.Kind == Reinstall:
		return string(a.To.Version)
	}
	return fmt.Sprintf("%s -> %s", a.From.Version, a.To.Version)
}

func (a *Action) why() string {
	reason := a.Reason
	if strings.HasPrefix(reason, "dependency of ") {
		reason = "(" + reason + ")"
	}
	switch a.Kind {
	case Upgrade, Downgrade:
		extra := fmt.Sprintf("(serial %d -> %d)", a.From.Serial, a.To.Serial)
		if a.From.Name != a.To.Name {
			extra = fmt.Sprintf("(renamed from %s, serial %d -> %d)", a.From.Name, a.From.Serial, a.To.Serial)
		}
		if a.Kind == Downgrade {
			extra = "downgrade " + extra
		}
		return reason + " " + extra
	}
	return reason
}

func colorFor(k Kind) string {
	switch k {
	case Install:
		return "\x1b[32m"
	case Remove:
		return "\x1b[31m"
	}
	return "\x1b[33m"
}

// HumanBytes formats n with binary units: "12.3 MiB".
func HumanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// JSONVersion is the version of the JSON documents packets emits. It grows
// only when a field changes meaning or disappears; new fields may appear at
// any time.
const JSONVersion = 1

// PlanJSON is the stable, versioned JSON shape of a plan (packets plan --json).
type PlanJSON struct {
	FormatVersion int            `json:"format_version"`
	Changes       bool           `json:"changes"`
	Generation    int64          `json:"generation"`
	Summary       map[string]int `json:"summary"`
	DownloadBytes int64          `json:"download_bytes"`
	Actions       []ActionJSON   `json:"actions"`
	Warnings      []string       `json:"warnings"`
}

// ActionJSON is one action in PlanJSON.
type ActionJSON struct {
	Action   string     `json:"action"`
	Name     string     `json:"name"`
	From     *BuildJSON `json:"from,omitempty"`
	To       *BuildJSON `json:"to,omitempty"`
	Reason   string     `json:"reason"`
	Explicit bool       `json:"explicit"`
}

// BuildJSON is one build in ActionJSON.
type BuildJSON struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	Serial  int64  `json:"serial"`
	SHA256  string `json:"sha256"`
	Size    int64  `json:"size,omitempty"`
	Repo    string `json:"repo,omitempty"`
}

// JSON returns the plan in its stable JSON shape.
func (p *Plan) JSON() PlanJSON {
	out := PlanJSON{FormatVersion: JSONVersion, Changes: p.Changes(), Generation: p.Generation,
		Summary: map[string]int{}, DownloadBytes: p.DownloadSize(), Actions: []ActionJSON{}, Warnings: p.Warnings}
	if out.Warnings == nil {
		out.Warnings = []string{}
	}
	for _, k := range []Kind{Install, Upgrade, Downgrade, Reinstall, Remove, Mark} {
		out.Summary[k.String()] = p.Count(k)
	}
	for _, a := range p.Actions {
		aj := ActionJSON{Action: a.Kind.String(), Name: string(a.Name), Reason: a.Reason, Explicit: a.Explicit}
		if a.From != nil {
			aj.From = &BuildJSON{Name: string(a.From.Name), Version: string(a.From.Version), Serial: a.From.Serial, SHA256: a.From.Digest.String()}
		}
		if a.To != nil && a.Kind != Mark {
			aj.To = availableJSON(a.To)
		}
		out.Actions = append(out.Actions, aj)
	}
	return out
}

func availableJSON(b *packages.Available) *BuildJSON {
	return &BuildJSON{Name: string(b.Name), Version: string(b.Version), Serial: b.Serial, SHA256: b.Digest.String(), Size: b.Size, Repo: b.Repo}
}

// jsonIndent is how packets writes JSON documents: two-space indented.
func jsonIndent(v any) ([]byte, error) { return json.MarshalIndent(v, "", "  ") }
