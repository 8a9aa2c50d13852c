package threads

import (
	"database/sql"
	"fmt"
	"log/slog"
	"time"
)

// checkpointInterval is how often the WAL is copied back into the database file.
const checkpointInterval = 500 * time.Millisecond

// checkpointer copies the write-ahead log into the database file from its own connection,
// so the writer never pays for it inside a commit (inline auto-checkpoints cost 6% of the
// server's CPU on the writer's path under load). PASSIVE checkpoints never block the
// writer; SQLite restarts the WAL from its start once a checkpoint has caught up.
type checkpointer struct {
	db   *sql.DB
	log  *slog.Logger
	quit chan struct{}
	done chan struct{}
}

func startCheckpointer(path string, log *slog.Logger) (*checkpointer, error) {
	db, err := sql.Open("sqlite", dsn(path, false))
	if err != nil {
		return nil, fmt.Errorf("open checkpointer: %w", err)
	}
	db.SetMaxOpenConns(1)
	c := &checkpointer{db: db, log: log, quit: make(chan struct{}), done: make(chan struct{})}
	go c.run()
	return c, nil
}

func (c *checkpointer) run() {
	defer close(c.done)
	t := time.NewTicker(checkpointInterval)
	defer t.Stop()
	for {
		select {
		case <-c.quit:
			return
		case <-t.C:
			if _, err := c.db.Exec("PRAGMA wal_checkpoint(PASSIVE)"); err != nil {
				c.log.Warn("WAL checkpoint failed", "err", err)
			}
		}
	}
}

// stop ends the loop with a last PASSIVE checkpoint. Not TRUNCATE: that waits for, and
// blocks, the writer of any other process using the database (a running serve while an
// ingest or set command closes).
func (c *checkpointer) stop() error {
	close(c.quit)
	<-c.done
	_, err := c.db.Exec("PRAGMA wal_checkpoint(PASSIVE)")
	if err != nil {
		c.log.Warn("final WAL checkpoint failed", "err", err)
	}
	return c.db.Close()
}
