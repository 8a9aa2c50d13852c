package threads

import (
	"context"
	"crypto/sha256"
	"database/sql"
	_ "embed"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/replydesk/replydesk/mailin"
)

// The store side of IMAP intake (mailin/imap): messages and the mailbox's checkpoint in
// one transaction, the messages left on the server, and what `status` shows.

// schemaV5 adds the IMAP tables (registered in store.go's migrations).
//
//go:embed schema5.sql
var schemaV5 string

const (
	// Within one UIDVALIDITY the checkpoint only moves forward and the backfill end stays
	// as first written; a new UIDVALIDITY replaces both. (SQLite evaluates every SET
	// expression against the old row.)
	sqlMailboxCommit = `INSERT INTO imap_mailboxes (name, uidvalidity, last_uid, backfill_end, stored, last_ok, updated)
		VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)
		ON CONFLICT (name) DO UPDATE SET
			last_uid = CASE WHEN uidvalidity = excluded.uidvalidity THEN max(last_uid, excluded.last_uid) ELSE excluded.last_uid END,
			backfill_end = CASE WHEN uidvalidity = excluded.uidvalidity THEN backfill_end ELSE excluded.backfill_end END,
			uidvalidity = excluded.uidvalidity, stored = stored + excluded.stored,
			last_ok = excluded.last_ok, updated = excluded.updated`
	sqlMailboxSkip = `INSERT INTO imap_skipped (mailbox, uidvalidity, uid, size, reason, at) VALUES (?, ?, ?, ?, ?, ?)
		ON CONFLICT DO NOTHING`
	sqlMailboxCheckpoint = `SELECT uidvalidity, last_uid, backfill_end FROM imap_mailboxes WHERE name = ? AND uidvalidity <> 0`
	sqlMailboxSkipped    = `SELECT uid, size, reason, at FROM imap_skipped WHERE mailbox = ? AND uidvalidity = ? ORDER BY uid`
	sqlMailboxState      = `INSERT INTO imap_mailboxes (name, connected, mode, waiting, last_ok, last_error, last_error_at, updated)
		VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
		ON CONFLICT (name) DO UPDATE SET connected = excluded.connected, mode = excluded.mode, waiting = excluded.waiting,
			last_ok = CASE WHEN excluded.last_ok > 0 THEN excluded.last_ok ELSE last_ok END,
			last_error = CASE WHEN excluded.last_error_at > 0 THEN excluded.last_error ELSE last_error END,
			last_error_at = max(last_error_at, excluded.last_error_at), updated = excluded.updated`
	sqlMailboxList = `SELECT name, uidvalidity, last_uid, stored, connected, mode, waiting, last_ok, last_error, last_error_at, updated,
		(SELECT count(*) FROM imap_skipped k WHERE k.mailbox = m.name AND k.uidvalidity = m.uidvalidity)
		FROM imap_mailboxes m ORDER BY name`
	sqlMailboxSkippedRecent = `SELECT uid, size, reason, at FROM imap_skipped WHERE mailbox = ? AND uidvalidity = ? ORDER BY at DESC, uid DESC LIMIT ?`
)

// maxSkippedListed bounds the skipped messages `status` lists per mailbox (the count is exact).
const maxSkippedListed = 20

// AcceptMailbox stores msgs exactly as fetched (the same bytes once, as Accept does),
// records skipped, and moves the mailbox's checkpoint to cp, all in one transaction of
// the group-committing writer: when it returns nil, every message and the checkpoint
// are on disk together. A checkpoint under a new UIDVALIDITY replaces the old one; under
// the same one it never moves back.
func (s *Store) AcceptMailbox(ctx context.Context, cp mailin.Checkpoint, msgs []mailin.Fetched, skipped []mailin.Skipped) ([]mailin.Receipt, error) {
	digests := make([][sha256.Size]byte, len(msgs))
	for i := range msgs {
		digests[i] = sha256.Sum256(msgs[i].Raw)
		if msgs[i].Env.Received.IsZero() {
			msgs[i].Env.Received = time.Now()
		}
	}
	now := time.Now()
	var rcs []mailin.Receipt
	err := s.write(ctx, func(tx *sql.Tx) error {
		rcs = make([]mailin.Receipt, len(msgs))
		stored := 0
		for i, m := range msgs {
			rc, err := s.insertRaw(tx, m.Env, digests[i][:], m.Raw, now)
			if err != nil {
				return fmt.Errorf("store UID %d: %w", m.UID, err)
			}
			rcs[i] = rc
			if !rc.Duplicate {
				stored++
			}
		}
		for _, k := range skipped {
			at := k.At
			if at.IsZero() {
				at = now
			}
			if _, err := tx.Exec(sqlMailboxSkip, cp.Mailbox, cp.UIDValidity, k.UID, k.Size, k.Reason, at.Unix()); err != nil {
				return fmt.Errorf("record skipped UID %d: %w", k.UID, err)
			}
		}
		_, err := tx.Exec(sqlMailboxCommit, cp.Mailbox, cp.UIDValidity, cp.LastUID, cp.BackfillEnd, stored, now.Unix())
		return err
	})
	if err != nil {
		s.RecordIntakeError(mailin.PathIMAP, err)
		return nil, fmt.Errorf("accept from %s: %w", cp.Mailbox, err)
	}
	for _, rc := range rcs {
		if !rc.Duplicate {
			s.Wake()
			break
		}
	}
	return rcs, nil
}

// insertRaw is Accept's row, inside the caller's transaction. The intake path's last
// message is now, not env.Received (a backfill's messages arrived long ago).
func (s *Store) insertRaw(tx *sql.Tx, env mailin.Envelope, digest, raw []byte, now time.Time) (mailin.Receipt, error) {
	var rc mailin.Receipt
	err := tx.Stmt(s.sql.insertInbox).QueryRow(env.Received.Unix(), env.Path, env.Remote, env.Helo, env.MailFrom,
		strings.Join(env.Rcpts, "\n"), env.Live, digest, raw).Scan(&rc.ID)
	if errors.Is(err, sql.ErrNoRows) {
		rc.Duplicate = true
		if err := tx.Stmt(s.sql.inboxByDigest).QueryRow(digest).Scan(&rc.ID); err != nil {
			return rc, fmt.Errorf("find duplicate: %w", err)
		}
	} else if err != nil {
		return rc, fmt.Errorf("insert message: %w", err)
	}
	_, err = tx.Stmt(s.sql.intakeOK).Exec(env.Path, now.Unix())
	return rc, err
}

// MailboxCheckpoint reads how far a mailbox has been taken in; found is false for a
// mailbox never taken in from (no commit yet: UIDVALIDITY is never 0).
func (s *Store) MailboxCheckpoint(ctx context.Context, mailbox string) (cp mailin.Checkpoint, found bool, err error) {
	cp.Mailbox = mailbox
	err = s.rdb.QueryRowContext(ctx, sqlMailboxCheckpoint, mailbox).Scan(&cp.UIDValidity, &cp.LastUID, &cp.BackfillEnd)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return cp, false, nil
	case err != nil:
		return cp, false, fmt.Errorf("read checkpoint of %s: %w", mailbox, err)
	}
	return cp, true, nil
}

// MailboxSkipped lists the messages of a mailbox left on the server under uidValidity.
func (s *Store) MailboxSkipped(ctx context.Context, mailbox string, uidValidity uint32) ([]mailin.Skipped, error) {
	list, err := queryAll(ctx, s.rdb, scanSkipped, sqlMailboxSkipped, mailbox, uidValidity)
	if err != nil {
		return nil, fmt.Errorf("read skipped messages of %s: %w", mailbox, err)
	}
	return list, nil
}

func scanSkipped(r scanner) (mailin.Skipped, error) {
	var k mailin.Skipped
	var at int64
	err := r.Scan(&k.UID, &k.Size, &k.Reason, &at)
	k.At = unixUTC(at)
	return k, err
}

// RecordMailbox notes a poller's state for `status`.
func (s *Store) RecordMailbox(ctx context.Context, st mailin.MailboxState) error {
	err := s.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.Exec(sqlMailboxState, st.Mailbox, st.Connected, st.Mode, st.Waiting,
			unixOrZero(st.LastOK), st.LastError, unixOrZero(st.LastErrorAt), time.Now().Unix())
		return err
	})
	if err != nil {
		return fmt.Errorf("record state of %s: %w", st.Mailbox, err)
	}
	return nil
}

func unixOrZero(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.Unix()
}

// MailboxStatus is one polled mailbox, as `replydesk status` shows it.
type MailboxStatus struct {
	Mailbox      string           `json:"mailbox"`
	Connected    bool             `json:"connected"`
	Mode         string           `json:"mode"` // idle, poll; "" when not connected
	LastOK       *time.Time       `json:"last_ok"`
	LastError    string           `json:"last_error,omitempty"`
	LastErrorAt  *time.Time       `json:"last_error_at,omitempty"`
	Waiting      int              `json:"waiting"` // on the server, not yet taken in
	Stored       int64            `json:"stored"`
	UIDValidity  uint32           `json:"uidvalidity"`
	LastUID      uint32           `json:"last_uid"` // the checkpoint: every UID up to it is stored or skipped
	Updated      *time.Time       `json:"updated"`  // when the poller last wrote this
	SkippedCount int              `json:"skipped_count"`
	Skipped      []mailin.Skipped `json:"skipped"` // left on the server, newest first
}

// MailboxStatus lists every mailbox ever polled, with its checkpoint and state.
func (s *Store) MailboxStatus(ctx context.Context) ([]MailboxStatus, error) {
	list, err := queryAll(ctx, s.rdb, func(r scanner) (MailboxStatus, error) {
		var m MailboxStatus
		var lastOK, lastErrAt, updated int64
		err := r.Scan(&m.Mailbox, &m.UIDValidity, &m.LastUID, &m.Stored, &m.Connected, &m.Mode, &m.Waiting,
			&lastOK, &m.LastError, &lastErrAt, &updated, &m.SkippedCount)
		m.LastOK, m.LastErrorAt, m.Updated = optTime(lastOK), optTime(lastErrAt), optTime(updated)
		return m, err
	}, sqlMailboxList)
	if err != nil {
		return nil, fmt.Errorf("mailbox status: %w", err)
	}
	for i := range list {
		m := &list[i]
		if m.SkippedCount == 0 {
			continue
		}
		if m.Skipped, err = queryAll(ctx, s.rdb, scanSkipped, sqlMailboxSkippedRecent, m.Mailbox, m.UIDValidity, maxSkippedListed); err != nil {
			return nil, fmt.Errorf("mailbox status: %w", err)
		}
	}
	return list, nil
}
