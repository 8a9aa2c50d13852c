package threads

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// Backup writes a consistent copy of the database to path (which must not exist) with
// VACUUM INTO: one read transaction, so it sees one committed state while writers go on
// (WAL), and the copy is compact and needs no -wal file. The copy is fsynced before
// Backup returns. It returns the copy's size.
func (s *Store) Backup(ctx context.Context, path string) (int64, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return 0, fmt.Errorf("backup: %w", err)
	}
	if _, err := os.Stat(abs); err == nil {
		return 0, fmt.Errorf("backup: %s exists; choose a new file", abs)
	}
	// Its own connection: the read pool is query_only, which refuses VACUUM INTO.
	db, err := sql.Open("sqlite", dsn(s.path, false))
	if err != nil {
		return 0, fmt.Errorf("backup: %w", err)
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, `VACUUM INTO ?`, abs); err != nil {
		return 0, fmt.Errorf("backup to %s: %w", abs, err)
	}
	// The file's bytes, then its name in the directory (SyncDir fsyncs any path it opens).
	if err := errors.Join(SyncDir(abs), SyncDir(filepath.Dir(abs))); err != nil {
		return 0, fmt.Errorf("backup to %s: %w", abs, err)
	}
	fi, err := os.Stat(abs)
	if err != nil {
		return 0, fmt.Errorf("backup: %w", err)
	}
	return fi.Size(), nil
}
