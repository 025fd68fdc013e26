package reconcile

import "fmt"

// GuardOptions tunes the removal guard.
type GuardOptions struct {
	AllowRemovals bool // the operator said --allow-removals
	MaxRemovals   int  // 0 means max(10, half of the managed packages)
}

// RemovalGuardError refuses a plan that removes suspiciously much: every
// managed package because the state declares nothing (an empty or
// half-saved file), or more than the limit. --yes never overrides it; only
// --allow-removals does.
type RemovalGuardError struct {
	Removals   int
	Managed    int
	Limit      int
	EmptyState bool
}

func (e *RemovalGuardError) Error() string {
	if e.EmptyState {
		return fmt.Sprintf("refusing to remove all %d managed packages: the state declares no package (an empty or half-saved state file?); pass --allow-removals if this is intended", e.Managed)
	}
	return fmt.Sprintf("refusing to remove %d of %d managed packages (the limit is %d); pass --allow-removals if this is intended", e.Removals, e.Managed, e.Limit)
}

// CheckRemovals applies the removal guard to p.
func CheckRemovals(p *Plan, opt GuardOptions) error {
	removals := p.Count(Remove)
	if opt.AllowRemovals || removals == 0 {
		return nil
	}
	if p.Declared == 0 && p.Managed > 0 {
		return &RemovalGuardError{Removals: removals, Managed: p.Managed, EmptyState: true}
	}
	limit := opt.MaxRemovals
	if limit <= 0 {
		limit = max(10, p.Managed/2)
	}
	if removals > limit {
		return &RemovalGuardError{Removals: removals, Managed: p.Managed, Limit: limit}
	}
	return nil
}
