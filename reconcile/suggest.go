package reconcile

import "github.com/packets-dev/packets/packages"

// Suggest returns the name in names closest to s by edit distance, if it is
// close enough to be a likely typo (at most 2 edits, and fewer than half of
// s), else "".
func Suggest(s string, names []packages.Name) string {
	best, bestD := "", 3
	for _, n := range names {
		if d := editDistance(s, string(n), bestD); d < bestD && d*2 < len(s) {
			best, bestD = string(n), d
		}
	}
	return best
}

// editDistance is the optimal string alignment distance of a and b
// (Levenshtein plus transposition of adjacent bytes, the commonest typo), or
// limit when it is at least limit: it gives up early, since most names are
// far from a typo.
func editDistance(a, b string, limit int) int {
	if diff := len(a) - len(b); diff >= limit || -diff >= limit {
		return limit
	}
	prev2 := make([]int, len(b)+1) // row i-2, for transpositions
	prev := make([]int, len(b)+1)  // row i-1
	cur := make([]int, len(b)+1)   // row i
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		rowMin := i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				cur[j] = min(cur[j], prev2[j-2]+1)
			}
			rowMin = min(rowMin, cur[j])
		}
		if rowMin >= limit {
			return limit
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return min(prev[len(b)], limit)
}
