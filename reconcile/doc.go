// Package reconcile decides and drives: it compares the desired state with
// what is installed and what the catalogue offers, and produces a Plan
// (Compute, pure and deterministic); it executes a Plan through small
// interfaces it declares itself (Apply); and it runs the watch loop.
//
// It never imports fetch, peer or lua: cmd/packets wires real
// implementations into the interfaces declared here. It never prints;
// progress is reported through an Observer.
package reconcile
