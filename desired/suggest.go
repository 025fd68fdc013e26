package desired

import "github.com/agext/levenshtein"

// suggest returns the candidate closest to given, if it is within an edit
// distance of 2, for "did you mean" hints; earlier candidates win ties.
func suggest(given string, candidates []string) string {
	best, bestDist := "", 3
	for _, c := range candidates {
		if d := levenshtein.Distance(given, c, nil); d < bestDist {
			best, bestDist = c, d
		}
	}
	return best
}
