package cli

import (
	"fmt"
	"io"
	"sync"

	"github.com/schollz/progressbar/v3"

	"github.com/packets-dev/packets/fetch"
	"github.com/packets-dev/packets/packages"
	"github.com/packets-dev/packets/reconcile"
)

// actionPrinter reports actions as they finish, one line each, with
// where the archive came from.
type actionPrinter struct {
	w       io.Writer
	quiet   bool // --json: the document says it all
	sources map[packages.Digest]string
}

func (a *App) applyObserver(asJSON bool) reconcile.Observer {
	return &actionPrinter{w: a.stdout, quiet: asJSON}
}

var pastTense = map[reconcile.Kind]string{
	reconcile.Install: "installed", reconcile.Upgrade: "upgraded", reconcile.Downgrade: "downgraded",
	reconcile.Reinstall: "reinstalled", reconcile.Remove: "removed",
}

func (p *actionPrinter) Fetched(sources map[packages.Digest]string) { p.sources = sources }
func (p *actionPrinter) ActionStarted(reconcile.Action)             {}
func (p *actionPrinter) ActionDone(a reconcile.Action, err error) {
	if p.quiet {
		return
	}
	if err != nil {
		fmt.Fprintf(p.w, "  %s %s: failed: %v\n", a.Kind.Symbol(), a.Name, err)
		return
	}
	line := fmt.Sprintf("  %s %s", pastTense[a.Kind], a.Name)
	if a.To != nil {
		line += " " + string(a.To.Version)
		if src := p.sources[a.To.Digest]; src != "" {
			line += " (from " + src + ")"
		}
	}
	fmt.Fprintln(p.w, line)
}

// fetchObserver draws a progress bar per download on a terminal, and
// nothing on a pipe.
func (a *App) fetchObserver() fetch.Observer {
	if !isTerminal(a.stderr) {
		return nil
	}
	return &progressBars{w: a.stderr, bars: map[packages.Digest]*progressbar.ProgressBar{}}
}

type progressBars struct {
	w    io.Writer
	mu   sync.Mutex
	bars map[packages.Digest]*progressbar.ProgressBar
}

func (p *progressBars) Start(w fetch.Want, source string) {
	if source == fetch.SourceCache {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.bars[w.Digest]; ok {
		return
	}
	p.bars[w.Digest] = progressbar.NewOptions64(w.Size,
		progressbar.OptionSetWriter(p.w), progressbar.OptionSetDescription(w.Name),
		progressbar.OptionShowBytes(true), progressbar.OptionClearOnFinish(),
		progressbar.OptionThrottle(100_000_000), progressbar.OptionSetWidth(30))
}

func (p *progressBars) Progress(w fetch.Want, n int64) {
	p.mu.Lock()
	bar := p.bars[w.Digest]
	p.mu.Unlock()
	if bar != nil {
		bar.Set64(n)
	}
}

func (p *progressBars) Done(w fetch.Want, source string, err error) {
	p.mu.Lock()
	bar := p.bars[w.Digest]
	p.mu.Unlock()
	if bar != nil {
		bar.Finish()
	}
}

// renderApplyResult prints what apply did, after the plan.
func (a *App) renderApplyResult(p *reconcile.Plan, res *reconcile.Result, err error) {
	for _, act := range p.Actions {
		if act.To == nil || act.Kind == reconcile.Mark {
			continue
		}
		a.logger.Info("fetched", "pkg", act.To.Name, "version", act.To.Version, "source", res.Sources[act.To.Digest])
	}
	for _, n := range res.Notes {
		fmt.Fprintf(a.stdout, "Note: %s\n", n)
	}
	failed := len(res.Failed)
	if err != nil && failed == 0 {
		return // the error says it; nothing was changed
	}
	fmt.Fprintf(a.stdout, "Apply complete: %d action(s) done", len(p.Actions)-failed)
	if failed > 0 {
		fmt.Fprintf(a.stdout, ", %d failed", failed)
	}
	fmt.Fprintln(a.stdout, ".")
}

// ApplyJSON is the stable JSON document of packets apply --json.
type ApplyJSON struct {
	FormatVersion int                `json:"format_version"`
	Plan          reconcile.PlanJSON `json:"plan"`
	Changed       bool               `json:"changed"`
	Outcomes      []OutcomeJSON      `json:"outcomes"`
	Notes         []string           `json:"notes"`
	Error         string             `json:"error,omitempty"`
}

// OutcomeJSON is what happened to one action.
type OutcomeJSON struct {
	Action string `json:"action"`
	Name   string `json:"name"`
	OK     bool   `json:"ok"`
	Source string `json:"source,omitempty"` // where the archive came from
	Error  string `json:"error,omitempty"`
}

func applyJSON(p *reconcile.Plan, res *reconcile.Result, err error) ApplyJSON {
	doc := ApplyJSON{FormatVersion: reconcile.JSONVersion, Plan: p.JSON(), Outcomes: []OutcomeJSON{}, Notes: []string{}}
	if err != nil {
		doc.Error = err.Error()
	}
	if res == nil {
		return doc
	}
	doc.Changed = true
	doc.Notes = append(doc.Notes, res.Notes...)
	failed := map[packages.Name]error{}
	for _, f := range res.Failed {
		failed[f.Action.Name] = f.Err
	}
	for _, a := range p.Actions {
		o := OutcomeJSON{Action: a.Kind.String(), Name: string(a.Name), OK: true}
		if a.To != nil {
			o.Source = res.Sources[a.To.Digest]
		}
		if ferr := failed[a.Name]; ferr != nil {
			o.OK, o.Error = false, ferr.Error()
		}
		doc.Outcomes = append(doc.Outcomes, o)
	}
	return doc
}
