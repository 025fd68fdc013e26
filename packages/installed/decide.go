package installed

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"

	"github.com/packets-dev/packets/packages"
)

// newConfigSuffix names the new version of a config file the user modified.
const newConfigSuffix = ".packets-new"

// decide fills c's payload with the decisions a roll forward must repeat:
// New's config files, the modified config files to keep, and Old's stale
// paths. batch holds every final path of the transaction, which no stale
// deletion may touch.
//
// Config files follow dpkg's conffiles: one the user modified (its hash on
// disk is not the recorded one) is kept, and the new build's version is
// published beside it; on Remove, or when the new build no longer ships
// it, it is left in place, unowned. An unmodified or missing one is
// replaced (or deleted).
func (db *DB) decide(ctx context.Context, l *Layout, c *change, batch map[string]bool) error {
	p := &c.row.p
	p.New, p.Config, p.Keep, p.Stale = c.New, nil, nil, nil
	var old []File
	if c.Old != nil {
		var err error
		if old, err = packageFiles(ctx, db.sql, c.Old.Name); err != nil {
			return err
		}
	}
	modified := map[string]bool{}
	for _, f := range old {
		if !f.Config || f.Type != TypeFile {
			continue
		}
		m, err := modifiedConfig(l, f)
		if err != nil {
			return err
		}
		modified[f.Path] = m
	}
	if c.New != nil {
		for _, e := range c.contents.Entries {
			if e.Type != packages.TypeFile || !c.contents.Manifest.IsConfig(e.Path) {
				continue
			}
			to := path.Join(c.New.DataDir, e.Path)
			p.Config = append(p.Config, to)
			if c.Old == nil {
				continue
			}
			from := path.Join(c.Old.DataDir, e.Path)
			if modified[from] {
				p.Keep = append(p.Keep, keptConfig{From: from, To: to, Beside: true})
			}
			delete(modified, from)
		}
	}
	for _, f := range old {
		if modified[f.Path] && !batch[f.Path] {
			p.Keep = append(p.Keep, keptConfig{From: f.Path, To: f.Path})
		}
	}
	keep := map[string]bool{}
	for _, k := range p.Keep {
		keep[k.From] = true
	}
	for _, f := range old {
		// Hook-made paths pass to the new build of the family (DESIGN §9).
		carried := f.FromHook && c.New != nil
		if !batch[f.Path] && !carried && !keep[f.Path] {
			p.Stale = append(p.Stale, f.Path)
		}
	}
	// Reverse lexical order puts every path before its parent dir.
	slices.Sort(p.Stale)
	slices.Reverse(p.Stale)
	return nil
}

// modifiedConfig reports whether the config file f's content on disk is
// not what was installed. A missing file is not modified: the new one
// takes its place (and on remove there is nothing to keep).
func modifiedConfig(l *Layout, f File) (bool, error) {
	dc := dirCache{root: l.Root}
	defer dc.close()
	d, err := dc.hash(rel(f.Path))
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("config file %s: %w", f.Path, err)
	}
	return d != f.Digest, nil
}

// keptOf lists the kept config files of cs for the report.
func keptOf(cs []*change) []KeptConfig {
	var out []KeptConfig
	for _, c := range cs {
		for _, k := range c.row.p.Keep {
			kc := KeptConfig{Package: c.name(), Path: k.To}
			if k.Beside {
				kc.NewPath = k.To + newConfigSuffix
			}
			out = append(out, kc)
		}
	}
	return out
}
