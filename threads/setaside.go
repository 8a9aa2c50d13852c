package threads

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
)

// SetAside is a message that could not be filed: stored raw, out of filing until
// `replydesk refile` (Store.Refile) puts it back.
type SetAside struct {
	InboxID  int64     `json:"inbox_id"`
	Received time.Time `json:"received"`
	Path     string    `json:"path"`
	MailFrom string    `json:"mail_from"`
	Attempts int       `json:"attempts"`
	Reason   string    `json:"reason"`
}

// maxSetAsideListed bounds the list `status` shows (the count is exact).
const maxSetAsideListed = 20

func (s *Store) setAsideList(ctx context.Context, st *Status) (err error) {
	st.SetAside, err = queryAll(ctx, s.rdb, func(r scanner) (SetAside, error) {
		var a SetAside
		var received int64
		err := r.Scan(&a.InboxID, &received, &a.Path, &a.MailFrom, &a.Attempts, &a.Reason)
		a.Received = unixUTC(received)
		return a, err
	}, sqlSetAsideList, maxSetAsideListed)
	return err
}

// Refile puts a set-aside message (or, with id 0, every one) back into filing, with its
// attempts reset, and wakes the processor. It returns how many it put back.
func (s *Store) Refile(ctx context.Context, id int64) (int64, error) {
	var n int64
	err := s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.Exec(sqlRefile, id)
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("refile: %w", err)
	}
	if n > 0 {
		s.Wake()
	}
	return n, nil
}

// InboxMessage is one accepted message as `show -inbox` prints it: its envelope, where
// filing stands, and its header block.
type InboxMessage struct {
	ID       int64     `json:"inbox_id"`
	Received time.Time `json:"received"`
	Path     string    `json:"path"`
	Remote   string    `json:"remote"`
	MailFrom string    `json:"mail_from"`
	Rcpts    []string  `json:"rcpt_to"`
	Size     int64     `json:"size"`
	State    string    `json:"state"`            // waiting, filed, set_aside, not_filed (sent mail that belongs nowhere: Reason says why)
	Ticket   int64     `json:"ticket,omitempty"` // when filed
	Attempts int       `json:"attempts"`
	Reason   string    `json:"reason,omitempty"` // the last filing error; for not_filed, why
	Header   string    `json:"header"`           // raw header block, capped
}

// ErrNoMessage is returned by InboxMessage for a number that was never accepted.
var ErrNoMessage = errors.New("no such message")

// maxHeaderShown caps the header block InboxMessage returns.
const maxHeaderShown = 16 << 10

// InboxMessage reads one accepted message.
func (s *Store) InboxMessage(ctx context.Context, id int64) (InboxMessage, error) {
	m := InboxMessage{ID: id}
	var received int64
	var processed int
	var rcpts string
	var head []byte
	err := s.rdb.QueryRowContext(ctx, sqlInboxMessage, id, maxHeaderShown).Scan(&received, &m.Path, &m.Remote,
		&m.MailFrom, &rcpts, &m.Size, &processed, &m.Attempts, &m.Reason, &m.Ticket, &head)
	if errors.Is(err, sql.ErrNoRows) {
		return m, fmt.Errorf("message %d: %w", id, ErrNoMessage)
	}
	if err != nil {
		return m, fmt.Errorf("message %d: %w", id, err)
	}
	m.Received = unixUTC(received)
	m.Rcpts = strings.Split(rcpts, "\n")
	m.State = [...]string{"waiting", "filed", "set_aside"}[min(max(processed, 0), 2)]
	if m.State == "filed" && m.Ticket == 0 {
		m.State = "not_filed" // processed, and on purpose in no ticket (sent.go)
	}
	if i := bytes.Index(head, []byte("\r\n\r\n")); i >= 0 {
		head = head[:i]
	} else if i := bytes.Index(head, []byte("\n\n")); i >= 0 {
		head = head[:i]
	}
	// For a terminal: no escape sequences or other control bytes from the sender.
	m.Header = strings.Map(func(r rune) rune {
		if r < 0x20 && r != '\t' && r != '\n' || r == 0x7f {
			return '?'
		}
		return r
	}, strings.ToValidUTF8(strings.ReplaceAll(string(head), "\r\n", "\n"), "\uFFFD"))
	return m, nil
}
