// Package threads owns the database: accepted raw mail, tickets, messages and the rules
// that decide which ticket a message belongs to. Other packages get typed methods, not SQL.
package threads

import (
	"context"
	"database/sql"
	_ "embed"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"sync"
	"sync/atomic"
	"time"

	_ "modernc.org/sqlite" // pure-Go SQLite driver, registered as "sqlite"
)

// schemaVersion is the version schema.sql creates. A database with a newer version was
// written by a newer replydesk and is refused; an older one is migrated at start-up.
const schemaVersion = 6

var (
	//go:embed schema.sql
	schemaV1 string
	//go:embed schema2.sql
	schemaV2 string
	//go:embed schema3.sql
	schemaV3 string
	//go:embed schema4.sql
	schemaV4 string
	//go:embed schema6.sql
	schemaV6 string
)

// migrations[v] upgrades a database from version v to v+1. Version 0 is an empty file.
var migrations = []string{schemaV1, schemaV2, schemaV3, schemaV4, schemaV5, schemaV6}

// Config is what the store and the filing rules need to know.
type Config struct {
	DataDir   string
	Name      string    // helpdesk name, also the subject tag
	Addresses []Address // support addresses and the queue each feeds
	Limits    ParseLimits
	// MaxDBBytes caps the database file (0: no cap). At the cap, writes fail as on a full
	// disk: new mail is answered 451 and stays with the sender; nothing is lost.
	MaxDBBytes int64
	// Secret signs reply tokens; when empty, LoadOrCreateSecret's key in DataDir is used.
	Secret     []byte
	Agents     []string          // agent addresses
	AgentNames map[string]string // lower-cased agent address -> name (#assign by name)
	// AgentQueues: lower-cased agent address -> the queues the agent serves (none: all).
	// A team reply token passes only for an agent of the ticket's queue or its assignee.
	AgentQueues map[string][]string
	// TrustedAuthservIDs: Authentication-Results from these authserv-ids (added by our
	// own MTA) must show DKIM or DMARC passing for an agent's reply to count as theirs.
	TrustedAuthservIDs []string
	ReopenDays         int                      // a reply to a ticket resolved longer ago opens a new one
	SLA                map[string]time.Duration // first-response target per category (DefaultSLA fills gaps)
}

// Address is one configured support address.
type Address struct {
	Email    string
	Queue    string
	Category string
}

// Store is the replydesk database. It has one writer goroutine that group-commits every
// write (see writer.go) and a pool of read-only connections.
type Store struct {
	cfg        Config
	log        *slog.Logger
	path       string
	wdb        *sql.DB // exactly one connection, owned by the writer goroutine
	rdb        *sql.DB // read-only pool
	tokens     *Tokens
	tagRe      *regexp.Regexp // "[<name> #<n>]"
	writer     *writer
	sql        *prepared // hot-path statements on wdb
	ckpt       *checkpointer
	responder  Responder                        // composes the mail a filed message causes; nil: none
	onQueued   func()                           // called after a filing transaction that queued mail commits
	onSetAside func(inbox int64, reason string) // called when a message is set aside
	wake       chan struct{}                    // one slot: new mail was accepted, the processor should look
	arrivals   atomic.Int64                     // messages accepted (Busy measures their rate)
	busyMu     sync.Mutex                       // guards the last Busy measurement:
	busySince  time.Time
	busyCount  int64
	busy       bool

	closeOnce sync.Once
	closeErr  error
}

// ErrClosed is returned by writes after Close.
var ErrClosed = errors.New("store closed")

// Open opens (creating if needed) the database in cfg.DataDir, checks and migrates its
// schema, and starts the writer.
func Open(cfg Config, log *slog.Logger) (*Store, error) {
	if cfg.Limits == (ParseLimits{}) {
		cfg.Limits = DefaultParseLimits()
	}
	if cfg.Name == "" {
		cfg.Name = "Support"
	}
	if len(cfg.Secret) == 0 {
		key, err := LoadOrCreateSecret(cfg.DataDir)
		if err != nil {
			return nil, err
		}
		cfg.Secret = key
	}
	if err := os.MkdirAll(cfg.DataDir, 0o750); err != nil {
		return nil, fmt.Errorf("create data dir: %w", err)
	}
	path := filepath.Join(cfg.DataDir, "replydesk.db")
	wdb, err := sql.Open("sqlite", dsn(path, false)+maxPagesPragma(cfg.MaxDBBytes))
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	wdb.SetMaxOpenConns(1)
	wdb.SetMaxIdleConns(1)
	wdb.SetConnMaxLifetime(0)
	s := &Store{cfg: cfg, log: log, path: path, wdb: wdb, wake: make(chan struct{}, 1),
		tokens: NewTokens(cfg.Secret),
		tagRe:  regexp.MustCompile(`(?i)\[` + regexp.QuoteMeta(cfg.Name) + `\s+#([0-9]{1,18})\]`)}
	if err := s.checkPragmas(); err != nil {
		wdb.Close()
		return nil, err
	}
	if err := s.migrate(); err != nil {
		wdb.Close()
		return nil, err
	}
	if s.sql, err = prepare(wdb); err != nil {
		wdb.Close()
		return nil, err
	}
	s.rdb, err = sql.Open("sqlite", dsn(path, true))
	if err != nil {
		wdb.Close()
		return nil, fmt.Errorf("open %s for reading: %w", path, err)
	}
	s.rdb.SetMaxOpenConns(8)
	s.writer = startWriter(wdb, log)
	if s.ckpt, err = startCheckpointer(path, log); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// dsn builds the modernc.org/sqlite data source name. The pragmas run on every new
// connection: WAL so readers never block the writer, synchronous=FULL so a commit is on
// disk when it returns, immediate transactions so the writer never meets SQLITE_BUSY
// half-way through a batch.
func dsn(path string, readOnly bool) string {
	q := url.Values{}
	q.Add("_pragma", "busy_timeout(10000)")
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(FULL)")
	q.Add("_pragma", "foreign_keys(1)")
	if readOnly {
		q.Add("_pragma", "query_only(1)")
	} else {
		q.Set("_txlock", "immediate")
		// Checkpoints run on their own connection (checkpoint.go), off the commit path.
		q.Add("_pragma", "wal_autocheckpoint(0)")
	}
	return "file:" + (&url.URL{Path: path}).EscapedPath() + "?" + q.Encode()
}

// pageSize is SQLite's default page size, which replydesk does not change.
const pageSize = 4096

func maxPagesPragma(maxBytes int64) string {
	if maxBytes <= 0 {
		return ""
	}
	return fmt.Sprintf("&_pragma=max_page_count(%d)", max(maxBytes/pageSize, 1))
}

// checkPragmas opens the first connection (running the dsn pragmas) and checks that WAL
// took. Switching a new database to WAL needs an exclusive lock, and SQLite answers
// SQLITE_BUSY at once, without its busy handler, while another process starting on the
// same new data dir holds one; so a busy open is retried for as long as busy_timeout.
func (s *Store) checkPragmas() error {
	var mode string
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := s.wdb.QueryRow("PRAGMA journal_mode").Scan(&mode)
		if err == nil {
			break
		}
		if !isBusy(err) || time.Now().After(deadline) {
			return fmt.Errorf("open %s: %w", s.path, err)
		}
		time.Sleep(time.Duration(5+rand.IntN(20)) * time.Millisecond)
	}
	if mode != "wal" {
		return fmt.Errorf("open %s: journal_mode is %q, want wal", s.path, mode)
	}
	return nil
}

// migrate brings the schema to schemaVersion. Each step reads the version inside its own
// immediate transaction, so processes starting at once on a new data dir (concurrent
// `ingest` runs from an MTA) take turns: the first creates the schema, the others see it.
func (s *Store) migrate() error {
	for {
		done, err := s.migrateStep()
		if err != nil || done {
			return err
		}
	}
}

func (s *Store) migrateStep() (done bool, err error) {
	tx, err := s.wdb.Begin() // BEGIN IMMEDIATE (dsn): the write lock, before reading
	if err != nil {
		return false, fmt.Errorf("read schema version: %w", err)
	}
	defer tx.Rollback()
	var v int
	if err := tx.QueryRow("PRAGMA user_version").Scan(&v); err != nil {
		return false, fmt.Errorf("read schema version: %w", err)
	}
	if v > schemaVersion {
		return false, fmt.Errorf("database %s has schema version %d, newer than this replydesk (%d): upgrade replydesk", s.path, v, schemaVersion)
	}
	if v == schemaVersion {
		return true, nil
	}
	if _, err := tx.Exec(migrations[v]); err != nil {
		return false, fmt.Errorf("migrate to version %d: %w", v+1, err)
	}
	if _, err := tx.Exec(fmt.Sprintf("PRAGMA user_version = %d", v+1)); err != nil {
		return false, fmt.Errorf("migrate to version %d: %w", v+1, err)
	}
	if err := tx.Commit(); err != nil {
		return false, fmt.Errorf("migrate to version %d: %w", v+1, err)
	}
	s.log.Info("database migrated", "path", s.path, "version", v+1)
	return false, nil
}

// Close stops the writer (after the writes already queued) and closes the database.
// OpenReader opens the database for reading only (tickets, show, export, status): no
// writer, no checkpoints, nothing that could make a running serve wait. A data dir
// without a database, or with an older schema, is opened with Open instead (creating or
// migrating it), so a read command works on a fresh machine too.
func OpenReader(cfg Config, log *slog.Logger) (*Store, error) {
	path := filepath.Join(cfg.DataDir, "replydesk.db")
	if _, err := os.Stat(path); err != nil {
		return Open(cfg, log)
	}
	rdb, err := sql.Open("sqlite", dsn(path, true))
	if err != nil {
		return nil, fmt.Errorf("open %s for reading: %w", path, err)
	}
	var v int
	if err := rdb.QueryRow("PRAGMA user_version").Scan(&v); err != nil {
		rdb.Close()
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	switch {
	case v > schemaVersion:
		rdb.Close()
		return nil, fmt.Errorf("database %s has schema version %d, newer than this replydesk (%d): upgrade replydesk", path, v, schemaVersion)
	case v < schemaVersion:
		rdb.Close()
		return Open(cfg, log)
	}
	rdb.SetMaxOpenConns(4)
	return &Store{cfg: cfg, log: log, path: path, rdb: rdb}, nil
}

// Close is idempotent.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		if s.writer == nil { // OpenReader
			s.closeErr = s.rdb.Close()
			return
		}
		s.writer.stop()
		var ckErr error
		if s.ckpt != nil {
			ckErr = s.ckpt.stop()
		}
		s.closeErr = errors.Join(ckErr, s.rdb.Close(), s.wdb.Close())
	})
	return s.closeErr
}

// Tokens signs and checks this helpdesk's reply tokens.
func (s *Store) Tokens() *Tokens { return s.tokens }

// Path is the database file.
func (s *Store) Path() string { return s.path }

// WriterStats reports how many transactions the writer committed and how many
// operations they carried: their ratio is the average group-commit batch.
func (s *Store) WriterStats() (commits, ops int64) {
	return s.writer.commits.Load(), s.writer.ops.Load()
}

func (s *Store) write(ctx context.Context, fn func(*sql.Tx) error) error {
	if s.writer == nil {
		return errors.New("store opened for reading only")
	}
	return s.writer.do(ctx, fn, false)
}

// writeBackground is write for work no sender waits on (filing, composing, delivery
// marks): it is committed after, never together with, the accepts queued beside it.
func (s *Store) writeBackground(ctx context.Context, fn func(*sql.Tx) error) error {
	if s.writer == nil {
		return errors.New("store opened for reading only")
	}
	return s.writer.do(ctx, fn, true)
}
