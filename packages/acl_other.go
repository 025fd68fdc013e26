//go:build !linux

package packages

import "os"

// noDefaultACL is false where packets does not know how to look: Publish
// then gives every directory its mode.
func noDefaultACL(*os.Root, string) bool { return false }
