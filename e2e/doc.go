// Package e2e runs the packets binary end to end with testscript: each
// script in testdata/script reads like a terminal transcript. Scripts talk
// to packets only by executing it; the Go side provides a real HTTP mirror
// on loopback that can be told to fail, and assertions over installed.db.
package e2e
