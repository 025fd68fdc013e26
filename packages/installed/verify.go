package installed

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/packets-dev/packets/packages"
)

// Drift is one difference between what installed.db records and the disk.
type Drift struct {
	Package packages.Name
	Path    string
	Problem string // "missing", "sha256 differs", "mode 0644, want 0755", ...
}

func (d Drift) String() string { return fmt.Sprintf("%s: %s: %s", d.Package, d.Path, d.Problem) }

// Verify checks that every path the named packages own (all packages when
// names is empty) is on disk with the recorded type, mode, size, link
// target and, unless fast, SHA-256; fast compares size, mode and mtime
// instead of reading contents. A config file is only checked to exist with
// its type: the administrator may edit it (as debsums does by default).
// A name that is not installed is an error wrapping ErrNotInstalled. It
// first runs Check: a damaged database is a *DamagedError, not drift.
func (db *DB) Verify(ctx context.Context, root *os.Root, names []packages.Name, fast bool) ([]Drift, error) {
	if err := db.Check(ctx); err != nil {
		return nil, err
	}
	c := newChecker(root, fast)
	var err error
	if len(names) == 0 {
		// Every file, with one query, in package then path order.
		err = eachFile(ctx, db.sql, `SELECT `+fileColumns+` FROM files ORDER BY package, path`, c.add)
	}
	for _, n := range names {
		if _, err = db.Package(ctx, n); err != nil {
			break
		}
		if err = eachFile(ctx, db.sql, `SELECT `+fileColumns+` FROM files WHERE package = ? ORDER BY path`, c.add, n); err != nil {
			break
		}
	}
	drift := c.wait()
	if err != nil {
		return nil, fmt.Errorf("verify: %w", err)
	}
	return drift, nil
}

// checker checks files on every core: the files it is given, in path
// order, go in batches to workers that each keep their own dirCache, so a
// directory is still opened about once, while the database is read.
type checker struct {
	batch []File
	work  chan []File
	wg    sync.WaitGroup
	mu    sync.Mutex
	drift []Drift
}

// checkBatch is how many files a worker takes at a time: enough that a
// directory's files mostly go to one worker, few enough to share the work.
const checkBatch = 256

func newChecker(root *os.Root, fast bool) *checker {
	n := runtime.GOMAXPROCS(0)
	c := &checker{work: make(chan []File, n)}
	for range n {
		c.wg.Go(func() {
			dc := dirCache{root: root}
			defer dc.close()
			var drift []Drift
			for batch := range c.work {
				for _, f := range batch {
					if p := checkFile(&dc, f, fast); p != "" {
						drift = append(drift, Drift{Package: f.Package, Path: f.Path, Problem: p})
					}
				}
			}
			c.mu.Lock()
			c.drift = append(c.drift, drift...)
			c.mu.Unlock()
		})
	}
	return c
}

// add queues f to be checked.
func (c *checker) add(f File) {
	c.batch = append(c.batch, f)
	if len(c.batch) == checkBatch {
		c.work <- c.batch
		c.batch = make([]File, 0, checkBatch)
	}
}

// wait checks what is queued and returns the drift, by package and path.
func (c *checker) wait() []Drift {
	if len(c.batch) > 0 {
		c.work <- c.batch
	}
	close(c.work)
	c.wg.Wait()
	slices.SortFunc(c.drift, func(a, b Drift) int {
		return cmp.Or(strings.Compare(string(a.Package), string(b.Package)), strings.Compare(a.Path, b.Path))
	})
	return c.drift
}

// eachFile calls fn with every file query returns, stopping when ctx ends.
func eachFile(ctx context.Context, q querier, query string, fn func(File), args ...any) error {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		if err := ctx.Err(); err != nil {
			return err
		}
		f, err := scanFile(rows)
		if err != nil {
			return err
		}
		fn(f)
	}
	return rows.Err()
}

// checkFile returns what is wrong with f on disk, or "".
func checkFile(dc *dirCache, f File, fast bool) string {
	p := rel(f.Path)
	var st unix.Stat_t
	err := dc.lstat(p, &st)
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
		return "missing"
	}
	if err != nil {
		return err.Error()
	}
	got := fileFromStat(f.Package, f.Path, &st)
	switch {
	case got.Type != f.Type:
		return fmt.Sprintf("is a %s, want a %s", got.Type, f.Type)
	case f.Config:
		return ""
	case f.Type == TypeSymlink:
		link, err := dc.readlink(p)
		if err != nil {
			return err.Error()
		}
		if link != f.Link {
			return fmt.Sprintf("links to %q, want %q", link, f.Link)
		}
		return ""
	case got.Mode != f.Mode:
		return fmt.Sprintf("mode %s, want %s", modeString(got.Mode), modeString(f.Mode))
	case f.Type != TypeFile:
		return ""
	case got.Size != f.Size:
		return fmt.Sprintf("size %d, want %d", got.Size, f.Size)
	case fast:
		if !got.MTime.Equal(f.MTime) {
			return "mtime differs"
		}
		return ""
	}
	d, err := dc.hash(p)
	if err != nil {
		return err.Error()
	}
	if d != f.Digest {
		return "sha256 differs"
	}
	return ""
}

// modeString formats permission and special bits in octal: "0644", "4755".
func modeString(m fs.FileMode) string {
	return fmt.Sprintf("%04o", packages.UnixMode(m))
}
