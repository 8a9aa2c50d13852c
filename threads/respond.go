package threads

import (
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Responder decides and composes the mail that a filed message causes (confirmations,
// notifications), in two steps. Decide runs inside the filing transaction and must be
// cheap: what it returns is recorded in that transaction as intents, so a crash can lose
// neither the ticket change nor the mail, and cannot keep one without the other.
// Compose runs later, outside the writer and in parallel (mailout's Composer): it
// renders, composes and signs one intent. mailout implements it.
type Responder interface {
	Decide(f Filed) ([]Intent, error)
	Compose(c ToCompose) (Composed, error)
}

// Intent is one mail filing decided to send. Its Message-ID is chosen now, so a reply
// threads by its headers even before the mail is composed.
type Intent struct {
	Kind         string // confirmation, notification, ask_details, agent_reply
	Auto         bool   // an automatic reply: rate-limited and logged in autoreplies
	From         string // the From header (the support address)
	EnvelopeFrom string // "" for automatic replies
	To           []string
	MessageID    string
	Subject      string // provisional, until composed
	Data         []byte // the Responder's own snapshot, handed back to Compose
}

// ToCompose is an intent waiting to be composed, as ComposeDue returns it.
type ToCompose struct {
	OutboxID int64
	Ticket   int64
	Kind     string
	Data     []byte
	Text     string // the text of the message the mail is about
	// InboxID is the inbox row of the message the mail is about (0: none, or mail we
	// wrote), Attachments whether the parser listed attachments on it: the Composer
	// reads the raw bytes (Store.RawMessage) only when the mail can carry them.
	InboxID     int64
	Attachments bool
	// Raw is that message's raw bytes, set by the Composer for mail that carries its
	// attachments (agent_reply, notification); ComposeDue leaves it nil.
	Raw []byte
}

// Composed is a composed intent: the bytes to send and what `show` displays.
type Composed struct {
	OutboxID int64
	Raw      []byte
	Subject  string
	Text     string
	Language string // the customer's language, remembered on the ticket ("" to leave it)
	Err      error  // composing failed: the mail fails visibly instead
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

	// An agent's reply (Kind agent or note): who acted, the text to relay to the customer
	// (Event agent_reply), the customer's conversation to continue, and whom they copied.
	Agent  string
	Relay  string
	Thread Thread
	Cc     []string
	// What to tell agents besides (agent_notice): command_error, forged, undeliverable,
	// collision, note; to whom (the acting agent when empty); the details, one per line.
	Notice   string
	NoticeTo []string
	Lines    []string
}

// Thread is the customer's conversation an agent's reply continues: the customer's
// latest message, and the references of that message.
type Thread struct {
	InReplyTo  string
	References []string
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
	intents, err := s.responder.Decide(ev)
	if err != nil {
		return fmt.Errorf("decide mail for #%d: %w", f.ticket, err)
	}
	if len(notes) > 0 {
		f.stored = append(f.stored, notes...)
		if _, err := tx.Stmt(s.sql.setMessageNotes).Exec(jsonList(f.stored), f.row); err != nil {
			return err
		}
	}
	for _, in := range intents {
		if err := s.queueIntent(tx, f.ticket, f.row, f.m.received, in); err != nil {
			return err
		}
	}
	f.queued += len(intents)
	return nil
}

func (s *Store) filedEvent(tx *sql.Tx, f *filing) (Filed, error) {
	p := f.m.parsed
	ev := Filed{Event: f.event, Kind: f.kind, Live: f.m.live, Auto: f.auto,
		Message: MessageInfo{From: p.From, FromName: p.FromName, MessageID: p.MessageID, Subject: p.Subject,
			Text: newOrBody(p), References: p.References, To: p.To, Cc: p.Cc, ContentLanguage: p.Header.Get("Content-Language")}}
	ev.Flags = append(append([]string{}, f.routing.flags...), f.flags...)
	var err error
	if ev.Ticket, err = s.ticketInfo(tx, f.ticket); err != nil {
		return ev, err
	}
	t := &ev.Ticket
	t.RecipientTo = s.supportAddressOf(f.m)
	from, key := strings.ToLower(p.From), AutoReplyKey(p.From)
	now := f.m.received.Unix()
	since, day := now-int64(RecentWindow/time.Second), now-86400
	var bouncing int
	err = errors.Join(
		tx.Stmt(s.sql.isBouncing).QueryRow(from).Scan(&bouncing),
		// Counts since day and, of those, since since (RecentWindow is under a day).
		tx.Stmt(s.sql.autoRepliesTo).QueryRow(key, day, since).Scan(&ev.TodayToSender, &ev.RecentToSender),
		tx.Stmt(s.sql.autoRepliesOn).QueryRow(f.ticket, day, since).Scan(&ev.TodayOnTicket, &ev.RecentOnTicket))
	ev.Bouncing = bouncing > 0
	if err != nil {
		return ev, err
	}
	customer, id := t.Customer, t.ID
	ev.Earlier = func() ([]Ticket, error) { return s.earlierTickets(tx, customer, id) }
	if f.act != nil {
		ev.Relay, ev.Notice, ev.NoticeTo, ev.Lines = f.act.relay, f.act.notice, f.act.noticeTo, f.act.lines
	}
	if f.kind == "agent" || f.kind == "note" {
		ev.Agent = f.routing.agent
		if ev.Thread, err = s.customerThread(tx, id); err != nil {
			return ev, err
		}
		if ev.Cc, err = s.copied(tx, id); err != nil {
			return ev, err
		}
		// The agent's reply goes to the customer: it is the customer's address that may
		// bounce.
		if err := tx.Stmt(s.sql.isBouncing).QueryRow(strings.ToLower(customer)).Scan(&bouncing); err != nil {
			return ev, err
		}
		ev.Bouncing = bouncing > 0
	}
	return ev, nil
}

// ticketInfo is a ticket as the Responder sees it.
func (s *Store) ticketInfo(tx *sql.Tx, id int64) (TicketInfo, error) {
	var t TicketInfo
	var due sql.NullInt64
	var created int64
	err := tx.Stmt(s.sql.ticketForResponse).QueryRow(id).Scan(&t.ID, &t.Subject, &t.Status, &t.Queue, &t.Category,
		&t.Customer, &t.Assignee, &t.Language, &created, &due)
	if err != nil {
		return t, err
	}
	t.Created = unixUTC(created)
	if due.Valid {
		d := unixUTC(due.Int64)
		t.Due = &d
	}
	t.CustomerToken = s.tokens.Customer(t.ID)
	if len(s.cfg.Addresses) > 0 {
		t.RecipientTo = s.cfg.Addresses[0].Email
	}
	return t, nil
}

func (s *Store) earlierTickets(tx *sql.Tx, customer string, except int64) ([]Ticket, error) {
	rows, err := tx.Stmt(s.sql.earlierTickets).Query(customer, except)
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

// queueIntent records an outbound message on the ticket and its outbox row, waiting to
// be composed; an automatic reply counts against the rate limits from now on.
func (s *Store) queueIntent(tx *sql.Tx, ticket, aboutRow int64, now time.Time, in Intent) error {
	kind := "system"
	if in.Auto {
		kind = "auto"
	}
	p := &Parsed{MessageID: in.MessageID, From: in.From, To: in.To, Subject: in.Subject}
	row, err := s.insertMessage(tx, ticket, 0, "out", kind, p, now, "", []string{in.Kind}, nil)
	if err != nil {
		return err
	}
	if _, err := tx.Stmt(s.sql.markQueued).Exec(row); err != nil {
		return err
	}
	if _, err := tx.Stmt(s.sql.queueIntent).Exec(row, ticket, in.Kind, in.EnvelopeFrom, strings.Join(in.To, "\n"), now.Unix(), now.Unix(), in.Data, aboutRow); err != nil {
		return err
	}
	if in.Auto {
		for _, a := range in.To {
			if _, err := tx.Stmt(s.sql.logAutoReply).Exec(AutoReplyKey(a), ticket, now.Unix()); err != nil {
				return err
			}
		}
	}
	return nil
}

// newOrBody is what a message adds (its text without quotes and signature), or all of it
// when that is empty (a forward, a reply that only quotes).
func newOrBody(p *Parsed) string {
	if p.New != "" {
		return p.New
	}
	return p.Body
}
