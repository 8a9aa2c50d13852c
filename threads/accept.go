package threads

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/replydesk/replydesk/mailin"
)

// Accept stores raw exactly as received, with its envelope, and returns once the
// transaction that holds it has committed. Concurrent callers share one commit (see
// writer.go). The same bytes accepted twice are stored once.
//
// Memory: raw is not copied in Go. The driver copies it into SQLite's memory for the
// insert, and SQLite builds its record from that (about twice the message, one message
// at a time, as the writer runs operations in turn). When Accept returns, nothing here
// refers to raw any more, so the caller's buffer is free.
func (s *Store) Accept(ctx context.Context, env mailin.Envelope, raw []byte) (mailin.Receipt, error) {
	// The writer may keep a finished operation in its batch until the slot is reused;
	// the operation must not keep the message alive with it.
	defer func() { raw = nil }()
	digest := sha256.Sum256(raw)
	if env.Received.IsZero() {
		env.Received = time.Now()
	}
	var rc mailin.Receipt
	s.arrivals.Add(1)
	err := s.write(ctx, func(tx *sql.Tx) error {
		rc = mailin.Receipt{}
		err := tx.Stmt(s.sql.insertInbox).QueryRow(env.Received.Unix(), env.Path, env.Remote, env.Helo, env.MailFrom,
			strings.Join(env.Rcpts, "\n"), env.Live, digest[:], raw).Scan(&rc.ID)
		if errors.Is(err, sql.ErrNoRows) {
			rc.Duplicate = true
			if err := tx.Stmt(s.sql.inboxByDigest).QueryRow(digest[:]).Scan(&rc.ID); err != nil {
				return fmt.Errorf("find duplicate: %w", err)
			}
		} else if err != nil {
			return fmt.Errorf("insert message: %w", err)
		}
		_, err = tx.Stmt(s.sql.intakeOK).Exec(env.Path, env.Received.Unix())
		return err
	})
	if err != nil {
		s.RecordIntakeError(env.Path, err)
		return mailin.Receipt{}, fmt.Errorf("accept message: %w", err)
	}
	if !rc.Duplicate {
		s.Wake()
	}
	return rc, nil
}

// Mail arriving at busyRate or more (arrivals per busyWindow) keeps background work
// (filing, composing, delivery) out of the senders' way; below it, mail is filed and
// answered at once. A rate, not "a sender is waiting right now": with a new connection
// per message there is a gap before every message, and filing in each gap would
// lengthen the commits of the senders that come right after it.
const (
	busyWindow = 20 * time.Millisecond
	busyRate   = 5 // 250 messages a second
)

// Busy reports whether mail is arriving fast (busyRate per busyWindow, measured over
// the last window).
func (s *Store) Busy() bool {
	s.busyMu.Lock()
	defer s.busyMu.Unlock()
	now, n := time.Now(), s.arrivals.Load()
	if d := now.Sub(s.busySince); d >= busyWindow {
		s.busy = (n-s.busyCount)*int64(busyWindow) >= busyRate*int64(d)
		s.busySince, s.busyCount = now, n
	}
	return s.busy
}

// Wake tells the processor that new mail is waiting.
func (s *Store) Wake() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// RecordIntakeError notes an intake failure for `status`, best effort: when the disk is
// the problem, this write fails too, and the log line is all that remains.
func (s *Store) RecordIntakeError(path string, cause error) {
	now := time.Now().Unix()
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		err := s.write(ctx, func(tx *sql.Tx) error {
			_, err := tx.Exec(sqlIntakeError, path, cause.Error(), now)
			return err
		})
		if err != nil && !errors.Is(err, ErrClosed) {
			s.log.Warn("could not record intake error", "path", path, "err", err)
		}
	}()
}

// RecordListen notes the address an intake path listens on, for `status`.
func (s *Store) RecordListen(ctx context.Context, path, addr string) error {
	return s.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.Exec(sqlIntakeListen, path, addr)
		return err
	})
}
