package threads

import (
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Responder decides and composes the mail that a filed message causes (confirmations,
// notifications). It is called inside the filing transaction, and the mail it returns is
// queued in that same transaction: a crash can lose neither the ticket change nor the
// mail, and cannot keep one without the other. mailout implements it.
type Responder interface {
	Respond(f Filed) ([]OutMail, error)
}

// Filed is what a Responder learns about a message just filed.
type Filed struct {
	Event   string // opened, customer_reply, agent_reply, auto_mail, bounce
	Kind    string // customer, agent, auto, system
	Live    bool   // false for imports (answer nobody) unless -notify
	Auto    bool   // automatic mail: never answered
	Flags   []string
	Ticket  TicketInfo
	Message MessageInfo
	// Earlier reads the customer's other tickets, newest first (at most 5), in the filing
	// transaction; only mail that is actually sent needs them, so it is not read up front.
	Earlier  func() ([]Ticket, error)
	Bouncing bool // mail to the sender bounced; no auto-replies until they write
	// Note adds a note to the filed message (shown by show): why no confirmation went
	// out, for instance. Valid only during Respond.
	Note func(string)
	// Auto-replies already sent to this sender and on this ticket, for the rate limits.
	RecentToSender, TodayToSender, RecentOnTicket, TodayOnTicket int
}

// TicketInfo is the ticket as it stands after filing.
type TicketInfo struct {
	ID                         int64
	Subject, Status, Queue     string
	Category, Customer         string
	Assignee, Language         string
	Created                    time.Time
	Due                        *time.Time
	CustomerToken, RecipientTo string // the customer's reply token; the support address written to
}

// MessageInfo is the filed message.
type MessageInfo struct {
	From, FromName, MessageID, Subject, Text string
	References                               []string // its own references, oldest first
	To, Cc                                   []string
	ContentLanguage                          string
}

// OutMail is one mail to queue: the raw bytes, ready to send.
type OutMail struct {
	Kind         string // confirmation, notification, ask_details, agent_reply
	Auto         bool   // an automatic reply: rate-limited and logged in autoreplies
	From         string // the From header (the support address)
	EnvelopeFrom string // "" for automatic replies
	To           []string
	Raw          []byte
	MessageID    string
	Subject      string
	Text         string
	Language     string // the customer's language, remembered on the ticket
}

// RecentWindow is the short window of the auto-reply rate limits (the long one is a day).
const RecentWindow = 10 * time.Minute

// AutoReplyKey is the address the per-address auto-reply limits count by: lower-cased and
// without its +tag, so that robot+1@, robot+2@, ... share one limit. (The bouncing list
// stays per exact address: a bounce says something about that one mailbox.)
func AutoReplyKey(addr string) string {
	a := strings.ToLower(strings.TrimSpace(addr))
	at := strings.LastIndexByte(a, '@')
	if at < 0 {
		return a
	}
	local, domain := a[:at], a[at:]
	if plus := strings.IndexByte(local, '+'); plus > 0 {
		local = local[:plus]
	}
	return local + domain
}

// SetResponder installs the Responder used for live mail (nil: nobody is answered) and
// a function called whenever a filing transaction that queued mail has committed (the
// outbox worker's wake-up). Call it before the processor runs.
func (s *Store) SetResponder(r Responder, onQueued func()) { s.responder, s.onQueued = r, onQueued }

// respond asks the Responder for mail and queues it, in the filing transaction.
func (s *Store) respond(tx *sql.Tx, f *filing) error {
	if s.responder == nil || !f.m.live {
		return nil
	}
	ev, err := s.filedEvent(tx, f)
	if err != nil {
		return err
	}
	var notes []string
	ev.Note = func(n string) { notes = append(notes, OneLine(n, 300)) }
	mails, err := s.responder.Respond(ev)
	if err != nil {
		return fmt.Errorf("compose mail for #%d: %w", f.ticket, err)
	}
	if len(notes) > 0 {
		f.stored = append(f.stored, notes...)
		if _, err := tx.Exec(sqlSetMessageNotes, jsonList(f.stored), f.row); err != nil {
			return err
		}
	}
	for _, m := range mails {
		if err := s.queueMail(tx, f.ticket, f.m.received, m); err != nil {
			return err
		}
	}
	f.queued += len(mails)
	return nil
}

func (s *Store) filedEvent(tx *sql.Tx, f *filing) (Filed, error) {
	p := f.m.parsed
	ev := Filed{Event: f.event, Kind: f.kind, Live: f.m.live, Auto: f.auto,
		Message: MessageInfo{From: p.From, FromName: p.FromName, MessageID: p.MessageID, Subject: p.Subject,
			Text: p.Body, References: p.References, To: p.To, Cc: p.Cc, ContentLanguage: p.Header.Get("Content-Language")}}
	ev.Flags = append(append([]string{}, f.routing.flags...), f.flags...)
	t := &ev.Ticket
	var due sql.NullInt64
	var created int64
	err := tx.QueryRow(sqlTicketForResponse, f.ticket).Scan(&t.ID, &t.Subject, &t.Status, &t.Queue, &t.Category,
		&t.Customer, &t.Assignee, &t.Language, &created, &due)
	if err != nil {
		return ev, err
	}
	t.Created = unixUTC(created)
	if due.Valid {
		d := unixUTC(due.Int64)
		t.Due = &d
	}
	t.CustomerToken = s.tokens.Customer(t.ID)
	t.RecipientTo = s.supportAddressOf(f.m)
	from, key := strings.ToLower(p.From), AutoReplyKey(p.From)
	now := f.m.received.Unix()
	since, day := now-int64(RecentWindow/time.Second), now-86400
	var bouncing int
	err = errors.Join(
		tx.QueryRow(sqlIsBouncing, from).Scan(&bouncing),
		tx.QueryRow(sqlAutoRepliesTo, key, since).Scan(&ev.RecentToSender),
		tx.QueryRow(sqlAutoRepliesTo, key, day).Scan(&ev.TodayToSender),
		tx.QueryRow(sqlAutoRepliesOn, f.ticket, since).Scan(&ev.RecentOnTicket),
		tx.QueryRow(sqlAutoRepliesOn, f.ticket, day).Scan(&ev.TodayOnTicket))
	ev.Bouncing = bouncing > 0
	if err != nil {
		return ev, err
	}
	customer, id := t.Customer, t.ID
	ev.Earlier = func() ([]Ticket, error) { return s.earlierTickets(tx, customer, id) }
	return ev, nil
}

func (s *Store) earlierTickets(tx *sql.Tx, customer string, except int64) ([]Ticket, error) {
	rows, err := tx.Query(sqlEarlierTickets, customer, except)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Ticket
	for rows.Next() {
		var t Ticket
		if err := rows.Scan(&t.ID, &t.Subject, &t.Status, &t.Language); err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, rows.Err()
}

// supportAddressOf is the support address the mail was sent to (for the reply address).
func (s *Store) supportAddressOf(m *pending) string {
	for _, c := range append(append(append([]string{}, m.rcpts...), m.parsed.To...), m.parsed.Cc...) {
		if a, ok := s.address(c); ok {
			return a.Email
		}
	}
	if len(s.cfg.Addresses) > 0 {
		return s.cfg.Addresses[0].Email
	}
	return ""
}

// queueMail records an outbound message on the ticket and its outbox row.
func (s *Store) queueMail(tx *sql.Tx, ticket int64, now time.Time, m OutMail) error {
	kind := "system"
	if m.Auto {
		kind = "auto"
	}
	p := &Parsed{MessageID: m.MessageID, From: m.From, To: m.To, Subject: m.Subject, Body: m.Text}
	row, err := s.insertMessage(tx, ticket, 0, "out", kind, p, now, "", []string{m.Kind}, nil)
	if err != nil {
		return err
	}
	if _, err := tx.Exec(sqlMarkQueued, row); err != nil {
		return err
	}
	if _, err := tx.Exec(sqlQueueOutbox, row, ticket, m.Kind, m.EnvelopeFrom, strings.Join(m.To, "\n"), m.Raw, now.Unix(), now.Unix()); err != nil {
		return err
	}
	if m.Auto {
		for _, a := range m.To {
			if _, err := tx.Exec(sqlLogAutoReply, AutoReplyKey(a), ticket, now.Unix()); err != nil {
				return err
			}
		}
	}
	if m.Language != "" {
		if _, err := tx.Exec(sqlSetLanguage, m.Language, ticket); err != nil {
			return err
		}
	}
	return nil
}
