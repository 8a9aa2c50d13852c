package threads

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"
)

// Outbound is mail replydesk wrote, recorded on its ticket so that replies to it (by
// headers) and bounces of it (by its Message-ID) find the ticket.
type Outbound struct {
	Ticket    int64
	Kind      string // auto, agent, system
	MessageID string // without angle brackets
	From      string
	To        []string
	Subject   string
	Text      string
	Date      time.Time
}

// RecordOutbound stores an outbound message as queued and returns its row id.
func (s *Store) RecordOutbound(ctx context.Context, o Outbound) (int64, error) {
	if o.Date.IsZero() {
		o.Date = time.Now()
	}
	var id int64
	err := s.write(ctx, func(tx *sql.Tx) error {
		p := &Parsed{MessageID: o.MessageID, From: o.From, To: o.To, Subject: o.Subject, Body: o.Text}
		var err error
		if id, err = s.insertMessage(tx, o.Ticket, 0, "out", o.Kind, p, o.Date, "", nil, nil); err != nil {
			return err
		}
		_, err = tx.Stmt(s.sql.markQueued).Exec(id)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("record outbound mail for #%d: %w", o.Ticket, err)
	}
	return id, nil
}

// OutboxItem is one queued mail, ready to deliver.
type OutboxItem struct {
	ID       int64
	Ticket   int64
	Kind     string
	MailFrom string
	Rcpts    []string
	Raw      []byte
	Attempts int
}

// dueMailBytes bounds the bytes of one DueMail answer (a queue of mail with attachments
// waiting for a smarthost that was down must not be loaded all at once); the first mail
// always comes, whatever its size.
const dueMailBytes = 64 << 20

// DueMail returns up to limit queued mails whose next attempt is due, oldest first, at
// most dueMailBytes of them.
func (s *Store) DueMail(ctx context.Context, now time.Time, limit int) ([]OutboxItem, error) {
	return queryAll(ctx, s.rdb, func(r scanner) (OutboxItem, error) {
		var it OutboxItem
		var rcpts string
		err := r.Scan(&it.ID, &it.Ticket, &it.Kind, &it.MailFrom, &rcpts, &it.Raw, &it.Attempts)
		it.Rcpts = strings.Split(rcpts, "\n")
		return it, err
	}, sqlDueMail, now.Unix(), limit, dueMailBytes)
}

// NextMailDue is when the next queued mail is due (ok false: none queued).
func (s *Store) NextMailDue(ctx context.Context) (next time.Time, ok bool, err error) {
	var at sql.NullInt64
	if err := s.rdb.QueryRowContext(ctx, sqlNextMailDue).Scan(&at); err != nil {
		return time.Time{}, false, err
	}
	return time.Unix(at.Int64, 0), at.Valid, nil
}

// MailSent records that the smarthost (or the dir transport) took these mails. Only the
// outbox row changes: the ticket's message reads as sent from it (sqlMessagesOfTicket),
// so the message row, which holds the whole text, is not rewritten for every mail.
func (s *Store) MailSent(ctx context.Context, ids ...int64) error {
	now := time.Now().Unix()
	return s.writeBackground(ctx, func(tx *sql.Tx) error {
		for _, id := range ids {
			if _, err := tx.Stmt(s.sql.outboxDone).Exec("sent", now, "", id); err != nil {
				return err
			}
		}
		return nil
	})
}

// MailRetry records a temporary failure and when to try again.
func (s *Store) MailRetry(ctx context.Context, id int64, reason string, next time.Time) error {
	return s.writeBackground(ctx, func(tx *sql.Tx) error {
		if _, err := tx.Stmt(s.sql.outboxRetry).Exec(ceilUnix(next), reason, id); err != nil {
			return err
		}
		_, err := tx.Stmt(s.sql.outboxMessageStatus).Exec("queued", reason, id)
		return err
	})
}

// ceilUnix rounds up to whole seconds (how times are stored): a retry may come a little
// late, never early.
func ceilUnix(t time.Time) int64 {
	if t.Nanosecond() > 0 {
		return t.Unix() + 1
	}
	return t.Unix()
}

// MailFailed records a permanent failure, visibly on the ticket and in status.
func (s *Store) MailFailed(ctx context.Context, id int64, reason string) error {
	now := time.Now()
	return s.writeBackground(ctx, func(tx *sql.Tx) error {
		if _, err := tx.Stmt(s.sql.outboxDone).Exec("failed", now.Unix(), reason, id); err != nil {
			return err
		}
		if _, err := tx.Stmt(s.sql.outboxMessageStatus).Exec("failed", reason, id); err != nil {
			return err
		}
		var ticket, row int64
		if err := tx.Stmt(s.sql.outboxTicket).QueryRow(id).Scan(&ticket, &row); err != nil {
			return err
		}
		if err := s.tellAgentUndeliverable(tx, row, reason); err != nil {
			return err
		}
		return s.addEvent(tx, ticket, now, "replydesk", "delivery_failed", reason)
	})
}

// ComposeDue returns up to limit intents waiting to be composed with an outbox id above
// after, oldest first.
func (s *Store) ComposeDue(ctx context.Context, after int64, limit int) ([]ToCompose, error) {
	return queryAll(ctx, s.rdb, func(r scanner) (ToCompose, error) {
		var c ToCompose
		var data string
		err := r.Scan(&c.OutboxID, &c.Ticket, &c.Kind, &data, &c.Text, &c.InboxID, &c.Attachments)
		c.Data = []byte(data)
		return c, err
	}, sqlComposeDue, after, limit)
}

// Composed stores composed mail in one transaction: each becomes queued for delivery
// (or, when composing failed, failed with the reason, shown on its ticket). An intent
// composed twice (a crash between composing and this commit) is stored once.
func (s *Store) Composed(ctx context.Context, mails []Composed) error {
	now := time.Now().Unix()
	err := s.writeBackground(ctx, func(tx *sql.Tx) error {
		for _, m := range mails {
			if m.Err != nil {
				if _, err := tx.Stmt(s.sql.composeFailed).Exec(m.Err.Error(), now, m.OutboxID); err != nil {
					return err
				}
				reason := "could not be composed: " + m.Err.Error()
				if _, err := tx.Stmt(s.sql.composedMessage).Exec("", "", "failed", reason, m.OutboxID); err != nil {
					return err
				}
				continue
			}
			res, err := tx.Stmt(s.sql.composedMail).Exec(now, m.OutboxID)
			if err != nil {
				return err
			}
			if n, _ := res.RowsAffected(); n == 0 {
				continue // composed already
			}
			if _, err := tx.Stmt(s.sql.composedRaw).Exec(m.OutboxID, m.Raw); err != nil {
				return err
			}
			if _, err := tx.Stmt(s.sql.composedMessage).Exec(m.Subject, m.Text, nil, nil, m.OutboxID); err != nil {
				return err
			}
			if m.Language != "" {
				if _, err := tx.Stmt(s.sql.composedLanguage).Exec(m.Language, m.OutboxID); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("store composed mail: %w", err)
	}
	return nil
}
