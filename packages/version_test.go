package packages

import "testing"

func TestCompareVersions(t *testing.T) {
	// Each row is strictly older than the next (pacman's vercmp(8) list, plus
	// numbers, leading zeros and Debian's tilde).
	ordered := []Version{
		"0.9", "1.0~beta", "1.0a", "1.0alpha", "1.0b", "1.0beta", "1.0p", "1.0pre", "1.0rc",
		"1.0", "1.0.a", "1.0.1", "1.0.2", "1.0.10", "1.1", "1.10", "2", "10",
	}
	for i := range ordered {
		for j := range ordered {
			want := 0
			if i < j {
				want = -1
			} else if i > j {
				want = 1
			}
			if got := CompareVersions(ordered[i], ordered[j]); got != want {
				t.Errorf("CompareVersions(%q, %q) = %d, want %d", ordered[i], ordered[j], got, want)
			}
		}
	}
	equal := [][2]Version{{"1.01", "1.1"}, {"1.0", "1.0"}, {"1-0", "1.0"}, {"007", "7"}}
	for _, p := range equal {
		if got := CompareVersions(p[0], p[1]); got != 0 {
			t.Errorf("CompareVersions(%q, %q) = %d, want 0", p[0], p[1], got)
		}
	}
}

func TestConstraint(t *testing.T) {
	tests := []struct {
		constraint string
		allows     []Version
		refuses    []Version
	}{
		{"", []Version{"0", "99.1"}, nil},
		{">= 14.0", []Version{"14.0", "14.1.0", "15"}, []Version{"13.9", "14.0rc1"}},
		{">= 1.2, < 2", []Version{"1.2", "1.9.9"}, []Version{"1.1", "2", "2.0.1"}},
		{"3.3.0", []Version{"3.3.0"}, []Version{"3.3.1"}},
		{"== 3.3.0", []Version{"3.3.0"}, []Version{"3.3"}},
		{"!= 2", []Version{"1", "3"}, []Version{"2"}},
		{"<= 2, > 1", []Version{"2", "1.5"}, []Version{"1", "2.1"}},
	}
	for _, tt := range tests {
		c, err := ParseConstraint(tt.constraint)
		if err != nil {
			t.Fatalf("ParseConstraint(%q): %v", tt.constraint, err)
		}
		for _, v := range tt.allows {
			if !c.Allows(v) {
				t.Errorf("%q should allow %q", tt.constraint, v)
			}
		}
		for _, v := range tt.refuses {
			if c.Allows(v) {
				t.Errorf("%q should refuse %q", tt.constraint, v)
			}
		}
	}
	for _, bad := range []string{">=", ">= 1 2", ">= 1,", "~> 1", "=> 1"} {
		if _, err := ParseConstraint(bad); err == nil {
			t.Errorf("ParseConstraint(%q) succeeded, want error", bad)
		}
	}
}

func TestParseDependency(t *testing.T) {
	for in, want := range map[string]string{
		"ncurses":          "ncurses",
		"ncurses>=6.0":     "ncurses >= 6.0",
		" ncurses >= 6.0 ": "ncurses >= 6.0",
		"lib-a < 2, >= 1":  "lib-a < 2, >= 1",
	} {
		d, err := ParseDependency(in)
		if err != nil {
			t.Fatalf("ParseDependency(%q): %v", in, err)
		}
		if d.String() != want {
			t.Errorf("ParseDependency(%q) = %q, want %q", in, d.String(), want)
		}
	}
	for _, bad := range []string{"", "Bad", "a >= ", "-a"} {
		if _, err := ParseDependency(bad); err == nil {
			t.Errorf("ParseDependency(%q) succeeded, want error", bad)
		}
	}
}

func TestNameValidate(t *testing.T) {
	for _, ok := range []string{"htop", "lib32-glibc", "g++", "python3.12", "a_b"} {
		if err := Name(ok).Validate(); err != nil {
			t.Errorf("Name(%q): %v", ok, err)
		}
	}
	for _, bad := range []string{"", "Htop", "-x", ".x", "a b", "a/b", "a\x00", string(make([]byte, 65))} {
		if err := Name(bad).Validate(); err == nil {
			t.Errorf("Name(%q) accepted", bad)
		}
	}
}
