package desired

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"

	"github.com/packets-dev/packets/packages"
)

// A Memo keeps the State that a machine's state files last decoded to,
// under the SHA-256 of their names and bytes and of the program that
// decoded them. LoadMachineMemo answers from it while those are unchanged:
// a state of 1,000 packages then costs a read and a hash instead of an HCL
// parse, which with the memory it allocates was about 40% of a no-op
// apply's CPU time. The key is the content, not stat
// data, so an edit within a timestamp's granularity or one that keeps the
// size is seen all the same. Decoding is a pure function of the key: the
// state language has no variables but a file's locals and only pure
// functions.
//
// The memo is trusted as installed.db is: it belongs beside it, where only
// packets writes (/var/lib/packets/state.memo). It is rewritten, whole and
// atomically, only after a load that had no problem at all, and only by a
// caller that holds the packets lock; a memo that is missing, torn or of
// another program is ignored.
type Memo struct {
	// Path is the memo file; "" is no memo (LoadMachine).
	Path string
	// Program identifies the decoder, such as the version and the
	// executable's identity: a memo written by another build is not used.
	Program string
	// Write lets a load that missed rewrite the memo. Only one writer may
	// set it at a time (the packets lock): a write first removes the
	// temporary files that a crash left.
	Write bool
}

// memoMagic starts every memo file; the digit is the format's version.
const memoMagic = "packets state memo 1\n"

// LoadMachineMemo is LoadMachine answered from memo when the files are
// those it was written for, and otherwise read and then remembered. wrote
// reports whether it rewrote the memo; a failure to write is returned as
// memoErr, beside a state that is good all the same (the caller may log
// it: a reader without write access to the memo only loses the speed-up).
func LoadMachineMemo(mainFile, dropinDir string, memo Memo) (s State, wrote bool, memoErr, err error) {
	files, err := machineFiles(mainFile, dropinDir)
	if err != nil {
		return State{}, false, nil, err
	}
	srcs := make([][]byte, len(files))
	for i, f := range files {
		if srcs[i], err = os.ReadFile(f); err != nil {
			return State{}, false, nil, fmt.Errorf("desired state: %w", err)
		}
	}
	var key [sha256.Size]byte
	if memo.Path != "" {
		key = memoKey(memo.Program, files, srcs)
		if s, ok := readMemo(memo.Path, key); ok {
			return s, false, nil, nil
		}
	}
	l := newLoader()
	for i, f := range files {
		l.addFile(f, srcs[i])
	}
	if s, err = l.result(); err != nil || len(l.diags) > 0 || !memo.Write || memo.Path == "" {
		return s, false, nil, err // only a load without a single diagnostic is remembered
	}
	if err := writeMemo(memo.Path, key, s); err != nil {
		return s, false, fmt.Errorf("state memo: %w", err), nil
	}
	return s, true, nil, nil
}

// memoKey hashes what a State is a function of. Every part is prefixed by
// its length, so that no two different inputs are written alike.
func memoKey(program string, files []string, srcs [][]byte) [sha256.Size]byte {
	h := sha256.New()
	part := func(b []byte) {
		h.Write(binary.BigEndian.AppendUint64(nil, uint64(len(b))))
		h.Write(b)
	}
	part([]byte(memoMagic))
	part([]byte(program))
	for i, f := range files {
		part([]byte(f))
		part(srcs[i])
	}
	var k [sha256.Size]byte
	h.Sum(k[:0])
	return k
}

// A memo file is memoMagic, the key, the SHA-256 of the payload, then the
// payload: the State as encodeState writes it.
const memoHeader = len(memoMagic) + 2*sha256.Size

// readMemo returns the State memo holds for key, if it holds one, whole.
func readMemo(path string, key [sha256.Size]byte) (State, bool) {
	b, err := os.ReadFile(path)
	if err != nil || len(b) < memoHeader || string(b[:len(memoMagic)]) != memoMagic {
		return State{}, false
	}
	b = b[len(memoMagic):]
	if !bytes.Equal(b[:sha256.Size], key[:]) {
		return State{}, false
	}
	payload := b[2*sha256.Size:]
	if sum := sha256.Sum256(payload); !bytes.Equal(b[sha256.Size:2*sha256.Size], sum[:]) {
		return State{}, false
	}
	s, err := decodeState(payload)
	if err != nil {
		return State{}, false
	}
	return s, true
}

// writeMemo replaces the memo at path with s under key, as an edit replaces
// a state file (writeFileAtomic; a new memo is 0600: options may hold what
// a state file's own mode keeps private), after removing the temporary
// files a crash left. A memo torn all the same is only a miss, told apart
// by the payload's hash.
func writeMemo(path string, key [sha256.Size]byte, s State) error {
	payload := encodeState(s)
	sum := sha256.Sum256(payload)
	out := make([]byte, 0, memoHeader+len(payload))
	out = append(out, memoMagic...)
	out = append(out, key[:]...)
	out = append(out, sum[:]...)
	out = append(out, payload...)
	dir := filepath.Dir(path)
	if _, err := os.Stat(dir); err != nil {
		return err // beside installed.db: never a directory of its own
	}
	stale, _ := filepath.Glob(filepath.Join(dir, "."+filepath.Base(path)+".tmp-*"))
	for _, p := range stale {
		os.Remove(p) // the caller is the only writer (Memo.Write)
	}
	return writeFileAtomic(path, out, 0o600)
}

// encodeState writes s as a list of fields, each string and count a uvarint
// length or value: the files, then every Want in name order. Decoding it is
// a tenth of what an encoding/gob stream costs, and nothing at start-up.
func encodeState(s State) []byte {
	var b []byte
	str := func(v string) {
		b = binary.AppendUvarint(b, uint64(len(v)))
		b = append(b, v...)
	}
	num := func(v int) { b = binary.AppendUvarint(b, uint64(v)) }
	num(len(s.Files))
	for _, f := range s.Files {
		str(f)
	}
	num(len(s.Packages))
	for _, name := range slices.Sorted(maps.Keys(s.Packages)) {
		w := s.Packages[name]
		str(string(w.Name))
		num(len(w.Constraint.Terms))
		for _, t := range w.Constraint.Terms {
			str(string(t.Op))
			str(string(t.Version))
		}
		hold := 0
		if w.Hold {
			hold = 1
		}
		num(hold)
		num(int(w.Ensure))
		str(w.Repo)
		num(len(w.Options))
		for _, k := range slices.Sorted(maps.Keys(w.Options)) {
			str(k)
			str(w.Options[k])
		}
		str(w.Pos.File)
		num(w.Pos.Line)
		num(w.Pos.Col)
	}
	return b
}

var errMemoPayload = errors.New("state memo: bad payload")

// decodeState reads what encodeState wrote. Empty lists and maps come back
// nil, as the decoder of state files makes them.
func decodeState(b []byte) (State, error) {
	bad := false
	num := func() int {
		v, n := binary.Uvarint(b)
		// One encoding per value: an overlong one ends in a zero byte.
		if n <= 0 || n > 1 && b[n-1] == 0 || v > math.MaxInt32 {
			bad = true
			return 0
		}
		b = b[n:]
		return int(v)
	}
	str := func() string {
		n := num()
		if bad || n > len(b) {
			bad = true
			return ""
		}
		v := string(b[:n])
		b = b[n:]
		return v
	}
	// count reads a list's length, which can be no more than the bytes
	// left: every element takes at least one.
	count := func() int {
		n := num()
		if n > len(b) {
			bad = true
			return 0
		}
		return n
	}
	var s State
	if n := count(); n > 0 {
		s.Files = make([]string, n)
		for i := range s.Files {
			s.Files[i] = str()
		}
	}
	n := count()
	s.Packages = make(map[packages.Name]Want, n)
	var prev packages.Name
	for i := range n {
		if bad {
			return State{}, errMemoPayload
		}
		var w Want
		if w.Name = packages.Name(str()); i > 0 && w.Name <= prev {
			bad = true // written in name order, each once
		}
		prev = w.Name
		if n := count(); n > 0 {
			w.Constraint.Terms = make([]packages.Term, n)
			for i := range w.Constraint.Terms {
				w.Constraint.Terms[i] = packages.Term{Op: packages.Op(str()), Version: packages.Version(str())}
			}
		}
		hold, ensure := num(), num()
		if hold > 1 || ensure > int(EnsureAbsent) {
			bad = true
		}
		w.Hold, w.Ensure = hold == 1, Ensure(ensure)
		w.Repo = str()
		if n := count(); n > 0 {
			w.Options = make(map[string]string, n)
			prevKey := ""
			for i := range n {
				k := str()
				if i > 0 && k <= prevKey {
					bad = true
				}
				prevKey = k
				w.Options[k] = str()
			}
		}
		w.Pos.File = str()
		w.Pos.Line = num()
		w.Pos.Col = num()
		s.Packages[w.Name] = w
	}
	if bad || len(b) != 0 {
		return State{}, errMemoPayload
	}
	return s, nil
}
