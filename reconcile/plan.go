package reconcile

import (
	"fmt"

	"github.com/packets-dev/packets/packages"
)

// Kind is what an Action does to one package.
type Kind uint8

// The kinds of action, in the order a plan summary lists them.
const (
	Install   Kind = iota + 1 // a package that is not installed
	Upgrade                   // a higher serial of the same family (possibly under a new name)
	Downgrade                 // a lower serial, because a version constraint excludes the installed one
	Reinstall                 // the same build again (options changed, or upgrade --force)
	Remove                    // installed, and no longer wanted or needed
	Mark                      // no files change; only the recorded reason (explicit or dependency) does
)

var kindNames = [...]string{Install: "install", Upgrade: "upgrade", Downgrade: "downgrade", Reinstall: "reinstall", Remove: "remove", Mark: "mark"}
var kindSymbols = [...]string{Install: "+", Upgrade: "~", Downgrade: "~", Reinstall: "~", Remove: "-", Mark: "*"}

func (k Kind) String() string {
	if int(k) < len(kindNames) && kindNames[k] != "" {
		return kindNames[k]
	}
	return fmt.Sprintf("Kind(%d)", k)
}

// Symbol is the one-character marker of k in a human plan.
func (k Kind) Symbol() string { return kindSymbols[k] }

// MarshalText makes a Kind read as its name in JSON.
func (k Kind) MarshalText() ([]byte, error) { return []byte(k.String()), nil }

// Build is an installed build, as much of it as a plan needs.
type Build struct {
	Name    packages.Name
	Version packages.Version
	Serial  int64
	Digest  packages.Digest
}

// Action is one step of a Plan.
//
// From is the installed build an action replaces or removes (nil for
// Install); To is the catalogue build it installs (nil for Remove and Mark).
// Reason says why, in words a person reads in the plan; it is not meant to
// be parsed. Explicit is the reason to record after the action: true when the
// state file declares the package, false when it is only a dependency.
type Action struct {
	Kind     Kind
	Name     packages.Name // the package's name after the action (before it, for Remove)
	From     *Build
	To       *packages.Available
	Reason   string
	Explicit bool
	Options  map[string]string // handed to the hooks; from the state file
}

// Plan is the ordered list of actions that takes the machine from what is
// installed to what the state wants.
//
// Actions are in execution order: every install, upgrade and downgrade comes
// after the actions that provide its dependencies; removals come last, each
// after the removals of the packages that depend on it, so that at no step
// is an installed package missing a dependency. A Plan is a value computed
// against one generation of installed.db: it must not be applied to another
// (Apply refuses with a *StalePlanError), and it must not be edited — compute
// a new one instead.
type Plan struct {
	Actions    []Action
	Generation int64    // the installed.db generation the plan was computed against
	Managed    int      // how many packages packets manages now
	Declared   int      // how many packages the state declares present
	Warnings   []string // things a person should know that do not stop the plan
}

// Changes reports whether applying p would change anything.
func (p *Plan) Changes() bool { return len(p.Actions) > 0 }

// Count returns how many actions of kind k the plan holds.
func (p *Plan) Count(k Kind) int {
	n := 0
	for _, a := range p.Actions {
		if a.Kind == k {
			n++
		}
	}
	return n
}

// DownloadSize is the sum of the archive sizes the plan needs.
func (p *Plan) DownloadSize() int64 {
	var n int64
	for _, a := range p.Actions {
		if a.To != nil && a.Kind != Mark {
			n += a.To.Size
		}
	}
	return n
}

// RunsInstallHooks reports whether a build the plan installs declares an
// install hook (in its manifest as the signed index lists it).
func (p *Plan) RunsInstallHooks() bool {
	for _, a := range p.Actions {
		if a.To != nil && a.Kind != Mark && a.To.Hooks.Install != "" {
			return true
		}
	}
	return false
}

// Fetches lists the catalogue builds the plan installs, in plan order.
func (p *Plan) Fetches() []*packages.Available {
	var out []*packages.Available
	for _, a := range p.Actions {
		if a.To != nil && a.Kind != Mark {
			out = append(out, a.To)
		}
	}
	return out
}
