package installed

import (
	"context"
	"fmt"
	"path"

	"github.com/packets-dev/packets/packages"
)

// OwnersUnder maps the paths under the machine directory dir that packages
// own to their packages: what the hooks of every other package must not
// overwrite. It is a range scan of the files table's primary key.
func (db *DB) OwnersUnder(ctx context.Context, dir string) (map[string]packages.Name, error) {
	prefix := path.Clean(dir) + "/"
	st, err := db.prepared(ctx, `SELECT path, package FROM files WHERE path >= ? AND path < ?`)
	if err != nil {
		return nil, fmt.Errorf("owners under %s: %w", dir, err)
	}
	rows, err := st.QueryContext(ctx, prefix, prefix[:len(prefix)-1]+"0") // '0' sorts right after '/'
	if err != nil {
		return nil, fmt.Errorf("owners under %s: %w", dir, err)
	}
	defer rows.Close()
	out := map[string]packages.Name{}
	for rows.Next() {
		var p, pkg string
		if err := rows.Scan(&p, &pkg); err != nil {
			return nil, fmt.Errorf("owners under %s: %w", dir, err)
		}
		out[p] = packages.Name(pkg)
	}
	return out, rows.Err()
}
