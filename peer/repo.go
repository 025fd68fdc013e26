package peer

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"io/fs"
	"net/netip"
	"path/filepath"
	"sync"

	"github.com/BurntSushi/toml"

	"github.com/packets-dev/packets/fetch"
)

// The signed files of a repository (DESIGN.md §5) that a peer can serve.
const (
	releaseFile     = "release.toml"
	signatureFile   = "release.toml.minisig"
	maxReleaseBytes = 64 << 10
)

// repoFile returns the path of file in the directory serving repository
// name (its URL form), if file is one of the three served: release.toml,
// its signature, or the index file release.toml names.
func (s *Server) repoFile(name, file string) (string, error) {
	dir, ok := s.repoDirs[name]
	if !ok {
		return "", fs.ErrNotExist
	}
	switch file {
	case releaseFile, signatureFile:
		return filepath.Join(dir, file), nil
	}
	index, err := releaseIndexFile(filepath.Join(dir, releaseFile))
	if err != nil || file != index {
		return "", fs.ErrNotExist
	}
	return filepath.Join(dir, file), nil
}

// releaseIndexFile reads the index file name out of a release.toml. The
// release is not verified here (the client does that); the name only has
// to be a plain file name other than the release's own.
func releaseIndexFile(path string) (string, error) {
	f, _, err := openRegular(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxReleaseBytes+1))
	if err != nil {
		return "", err
	}
	if len(data) > maxReleaseBytes {
		return "", fmt.Errorf("%s: too large", path)
	}
	var rel struct {
		Index struct {
			File string `toml:"file"`
		} `toml:"index"`
	}
	if _, err := toml.Decode(string(data), &rel); err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	name := rel.Index.File
	if !plainFileName(name) || name == releaseFile || name == signatureFile {
		return "", fmt.Errorf("%s: index file %q is not a plain file name", path, name)
	}
	return name, nil
}

// plainFileName reports whether s is a file name of letters, digits and
// "._+-" that is not "." or "..", and does not start with a dot.
func plainFileName(s string) bool {
	if s == "" || s[0] == '.' || len(s) > 255 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '+' || c == '-'
		if !ok {
			return false
		}
	}
	return true
}

// Repo reads one repository's signed files (release.toml, its signature,
// the index) from a LAN peer that serves them. Its Get has the shape of
// index.Getter, so that `packets sync` can fall back on a neighbour when no
// mirror is reachable: Sync verifies the signature, rollback and freeze
// rules and the index hash exactly as for a mirror. The first peer that
// serves release.toml is kept for the other files, so that a release and
// the index it names come from the same peer; asking for release.toml
// again discovers afresh.
type Repo struct {
	Source *Source // discovery and HTTP settings (Config, Conn, Targets, Client)
	Name   string  // the repository: "" or "default" for the default one

	mu     sync.Mutex
	pinned *fetch.Mirror
}

// String names the repository's peer, once one was found.
func (r *Repo) String() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.pinned == nil {
		return "LAN peers"
	}
	return "peer " + r.pinned.Base.Host
}

// Get reads path ("release.toml", "index-7.db") from a peer into memory,
// refusing more than maxSize bytes. When no peer answers, or none serves
// the file, the error matches fetch.ErrNotFound.
func (r *Repo) Get(ctx context.Context, path string, maxSize int64) (io.ReadCloser, error) {
	r.mu.Lock()
	pinned := r.pinned
	r.mu.Unlock()
	if pinned != nil && path != releaseFile {
		b, err := pinned.Get(ctx, path, maxSize)
		if err != nil {
			return nil, fmt.Errorf("peer %s: %w", pinned.Base.Host, err)
		}
		return io.NopCloser(bytes.NewReader(b)), nil
	}
	var (
		got  []byte
		errs []error
	)
	answered, err := r.Source.eachPeer(ctx, RepoKey(r.Name), false, func(ep netip.AddrPort, _ bool) bool {
		m := r.Source.mirror(ep, "repos/"+repoDirName(r.Name)+"/")
		b, err := m.Get(ctx, path, maxSize)
		if err != nil {
			errs = append(errs, fmt.Errorf("peer %s: %w", ep, err))
			return ctx.Err() != nil
		}
		got = b
		r.mu.Lock()
		r.pinned = m
		r.mu.Unlock()
		return true
	})
	switch {
	case got != nil:
		return io.NopCloser(bytes.NewReader(got)), nil
	case ctx.Err() != nil:
		return nil, ctx.Err()
	case err != nil:
		return nil, fmt.Errorf("%s from LAN peers: %v: %w", path, err, fetch.ErrNotFound)
	case answered == 0:
		return nil, fmt.Errorf("%s of repository %s: no LAN peer answered: %w", path, repoDirName(r.Name), fetch.ErrNotFound)
	}
	return nil, &fetch.FetchError{What: path, Errs: errs}
}
