package reconcile

import (
	"testing"

	"github.com/packets-dev/packets/packages"
)

func TestSuggest(t *testing.T) {
	names := []packages.Name{"htop", "ripgrep", "nano", "ncurses", "fd"}
	for in, want := range map[string]string{
		"htpo":    "htop",    // transposition
		"ripgerp": "ripgrep", // transposition
		"ripgre":  "ripgrep", // deletion
		"nanoo":   "nano",    // insertion
		"ncurzes": "ncurses", // substitution
		"xyz":     "",        // nothing close
		"fx":      "",        // too short to guess
	} {
		if got := Suggest(in, names); got != want {
			t.Errorf("Suggest(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestEditDistance(t *testing.T) {
	for _, tt := range []struct {
		a, b string
		want int
	}{
		{"", "", 0}, {"a", "", 1}, {"abc", "abc", 0}, {"abc", "acb", 1}, {"kitten", "sitting", 3}, {"ca", "abc", 3}, {"libgret", "libgreet", 1}, {"abcd", "badc", 2},
	} {
		if got := editDistance(tt.a, tt.b, 10); got != tt.want {
			t.Errorf("editDistance(%q, %q) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
	}
}
