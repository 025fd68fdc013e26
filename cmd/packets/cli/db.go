package cli

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/packets-dev/packets/packages/installed"
)

// packets db restore: the repair path for a damaged installed.db.

func newDBCmd(app *App) *cobra.Command {
	db := &cobra.Command{Use: "db", Short: "Repair installed.db"}
	db.AddCommand(&cobra.Command{
		Use:   "restore",
		Short: "Replace a damaged installed.db with the copy saved after the last successful change",
		Long: `Put back installed.db.bak, the copy packets saves after every apply that
changed something, keeping the damaged database as installed.db.damaged-<time>.
Then run packets verify --repair to bring the files in line with it.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			l, err := app.Layout()
			if err != nil {
				return err
			}
			// Hold the writers' lock, but do not open the database: it is
			// the thing being replaced.
			lk, err := acquireLock(cmd.Context(), l.LockFile(), 30*time.Second, nil)
			if err != nil {
				return err
			}
			defer lk.Close()
			if err := installed.Restore(l.InstalledDB()); err != nil {
				return err
			}
			fmt.Fprintf(app.stdout, "restored %s from its backup; now run packets verify --repair\n", l.InstalledDB())
			return nil
		},
	})
	return db
}
