package installed

import (
	"context"
	"fmt"
	"path"

	"github.com/packets-dev/packets/packages"
)

// OwnedUnder lists the paths under the machine directory dir that packages
// other than except own: what a hook of except must not overwrite. It is a
// range scan of the files table's primary key.
func (db *DB) OwnedUnder(ctx context.Context, dir string, except packages.Name) ([]string, error) {
	prefix := path.Clean(dir) + "/"
	st, err := db.prepared(ctx, `SELECT path FROM files WHERE path >= ? AND path < ? AND package != ? ORDER BY path`)
	if err != nil {
		return nil, fmt.Errorf("owned under %s: %w", dir, err)
	}
	rows, err := st.QueryContext(ctx, prefix, prefix[:len(prefix)-1]+"0", string(except)) // '0' sorts right after '/'
	if err != nil {
		return nil, fmt.Errorf("owned under %s: %w", dir, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var p string
		if err := rows.Scan(&p); err != nil {
			return nil, fmt.Errorf("owned under %s: %w", dir, err)
		}
		out = append(out, p)
	}
	return out, rows.Err()
}
