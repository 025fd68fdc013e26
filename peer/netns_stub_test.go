//go:build !netns

package peer

import "fmt"

// netnsRole exists only with the netns build tag.
func netnsRole(role string) int {
	fmt.Printf("unknown test role %q (network namespace roles need -tags netns)\n", role)
	return 2
}
