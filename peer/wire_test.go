package peer

import (
	"bytes"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/packets-dev/packets/packages"
)

var (
	digestA = packages.SumBytes([]byte("a"))
	hexA    = digestA.String()
)

func TestQueryFormat(t *testing.T) {
	q := Query(digestA)
	want := "Q:" + hexA + strings.Repeat(" ", QueryLen-2-64)
	if diff := cmp.Diff(want, string(q)); diff != "" {
		t.Errorf("Query (-want +got):\n%s", diff)
	}
	if len(q) != QueryLen {
		t.Errorf("len = %d, want %d", len(q), QueryLen)
	}
	a := Answer(digestA, 65535)
	if got, want := string(a), "H:"+hexA+":65535"; got != want {
		t.Errorf("Answer = %q, want %q", got, want)
	}
	if len(a) != maxAnswerLen || len(a) >= QueryLen {
		t.Errorf("answer is %d bytes: must be at most %d and shorter than a query", len(a), maxAnswerLen)
	}
}

func TestParseQuery(t *testing.T) {
	pad := func(s string) string { return s + strings.Repeat(" ", max(0, QueryLen-len(s))) }
	tests := []struct {
		name string
		in   string
		ok   bool
	}{
		{"valid", pad("Q:" + hexA), true},
		{"no padding", "Q:" + hexA, false},
		{"one byte short", pad("Q:" + hexA)[:QueryLen-1], false},
		{"one byte long", pad("Q:"+hexA) + " ", false},
		{"uppercase hex", pad("Q:" + strings.ToUpper(hexA)), false},
		{"non-hex digit", pad("Q:g" + hexA[1:]), false},
		{"63 digits", pad("Q:" + hexA[:63]), false},
		{"65 digits", pad("Q:" + hexA + "0"), false},
		{"garbage in padding", pad("Q:" + hexA + " x"), false},
		{"NUL padding", "Q:" + hexA + strings.Repeat("\x00", QueryLen-66), false},
		{"newline padding", pad("Q:" + hexA)[:QueryLen-1] + "\n", false},
		{"answer prefix", pad("H:" + hexA), false},
		{"lowercase prefix", pad("q:" + hexA), false},
		{"empty", "", false},
		{"all spaces", strings.Repeat(" ", QueryLen), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, ok := ParseQuery([]byte(tt.in))
			if ok != tt.ok {
				t.Fatalf("ParseQuery(%q) ok = %v, want %v", tt.in, ok, tt.ok)
			}
			if ok && d != digestA {
				t.Errorf("digest = %s, want %s", d, digestA)
			}
		})
	}
}

func TestParseAnswer(t *testing.T) {
	tests := []struct {
		name string
		in   string
		port int // 0: malformed
	}{
		{"valid", "H:" + hexA + ":9123", 9123},
		{"port 1", "H:" + hexA + ":1", 1},
		{"port 65535", "H:" + hexA + ":65535", 65535},
		{"port 0", "H:" + hexA + ":0", 0},
		{"port 65536", "H:" + hexA + ":65536", 0},
		{"leading zero", "H:" + hexA + ":09123", 0},
		{"six digits", "H:" + hexA + ":100000", 0},
		{"sign", "H:" + hexA + ":+9123", 0},
		{"negative", "H:" + hexA + ":-1", 0},
		{"no port", "H:" + hexA + ":", 0},
		{"no colon", "H:" + hexA + "9123", 0},
		{"trailing space", "H:" + hexA + ":9123 ", 0},
		{"trailing newline", "H:" + hexA + ":9123\n", 0},
		{"uppercase hex", "H:" + strings.ToUpper(hexA) + ":9123", 0},
		{"short digest", "H:" + hexA[:63] + ":9123", 0},
		{"query", string(Query(digestA)), 0},
		{"empty", "", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, port, ok := ParseAnswer([]byte(tt.in))
			if ok != (tt.port != 0) {
				t.Fatalf("ParseAnswer(%q) ok = %v, want %v", tt.in, ok, tt.port != 0)
			}
			if ok && (d != digestA || port != tt.port) {
				t.Errorf("= %s, %d; want %s, %d", d.Short(), port, digestA.Short(), tt.port)
			}
		})
	}
}

func TestRepoKey(t *testing.T) {
	if RepoKey("") != RepoKey("default") {
		t.Error(`RepoKey("") != RepoKey("default")`)
	}
	if RepoKey("extra") == RepoKey("default") {
		t.Error("two repositories share a key")
	}
	if !bytes.Equal(Query(RepoKey("extra"))[:2], []byte("Q:")) {
		t.Error("a repository key is not an ordinary query")
	}
}
