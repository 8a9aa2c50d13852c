package threads

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Ticket is the stable JSON shape of `tickets -json` and, with Messages, of `show -json`
// and `export` (SPEC §7). Times are RFC 3339 UTC.
type Ticket struct {
	ID           int64      `json:"id"`
	Subject      string     `json:"subject"`
	Status       string     `json:"status"`
	Queue        string     `json:"queue"`
	Category     string     `json:"category"`
	Priority     string     `json:"priority"`
	Customer     string     `json:"customer"`
	Assignee     string     `json:"assignee"`
	MessageCount int        `json:"message_count"`
	Created      time.Time  `json:"created"`
	Updated      time.Time  `json:"updated"`
	Due          *time.Time `json:"due"`
	Language     string     `json:"language,omitempty"`    // the customer's, once known (en, es, pt)
	Follows      *int64     `json:"follows,omitempty"`     // the resolved ticket this one follows up
	MergedInto   *int64     `json:"merged_into,omitempty"` // its messages now live in this ticket
	// FirstResponse is when an agent first answered the customer; SLA says whether that
	// was by the due time: "met", "missed", or "" while unanswered and not yet due
	// ("overdue" once past due).
	FirstResponse *time.Time `json:"first_response,omitempty"`
	SLA           string     `json:"sla,omitempty"`

	// In `show` and `export` only.
	Participants []Participant `json:"participants,omitempty"`
	Messages     []Message     `json:"messages,omitempty"`
	History      []Event       `json:"history,omitempty"`
}

// Participant is someone who takes part in a ticket.
type Participant struct {
	Address string `json:"address"`
	Role    string `json:"role"` // customer, cc, agent
}

// Event is one entry of a ticket's history.
type Event struct {
	At     time.Time `json:"at"`
	Actor  string    `json:"actor"`
	Kind   string    `json:"kind"`
	Detail string    `json:"detail,omitempty"`
}

// Message is one message of a ticket, in or out.
type Message struct {
	Direction   string       `json:"direction"`
	Kind        string       `json:"kind"`
	From        string       `json:"from"`
	To          []string     `json:"to"`
	Cc          []string     `json:"cc"`
	MessageID   string       `json:"message_id"`
	Subject     string       `json:"subject"`
	Date        time.Time    `json:"date"`
	Text        string       `json:"text"`
	Body        string       `json:"body"`
	Attachments []Attachment `json:"attachments"`
	MatchedBy   string       `json:"matched_by"`
	Flags       []string     `json:"flags"`
	Notes       []string     `json:"notes"`
	InboxID     int64        `json:"inbox_id,omitempty"`
	Delivery    *Delivery    `json:"delivery,omitempty"` // outbound mail only
}

// Delivery is the state of an outbound message.
type Delivery struct {
	Status      string     `json:"status"` // queued, sent, failed
	Attempts    int        `json:"attempts"`
	LastError   string     `json:"last_error"`
	NextAttempt *time.Time `json:"next_attempt"`
	OutboxID    int64      `json:"outbox_id"` // show -outbox N prints the mail as sent
}

// TicketFilter narrows `tickets`.
type TicketFilter struct {
	Status  string
	Queue   string
	Since   time.Time // updated at or after
	Overdue bool      // open, no first response, past the due time
}

// ErrNoTicket is returned by Ticket for a number that does not exist.
var ErrNoTicket = errors.New("no such ticket")

// Tickets lists tickets by number, ascending.
func (s *Store) Tickets(ctx context.Context, f TicketFilter) ([]Ticket, error) {
	q := `SELECT ` + sqlTicketColumns + ` FROM tickets t WHERE t.merged_into IS NULL`
	var args []any
	if f.Status != "" {
		q += ` AND t.status = ?`
		args = append(args, f.Status)
	}
	if f.Queue != "" {
		q += ` AND t.queue = ?`
		args = append(args, f.Queue)
	}
	if f.Overdue {
		q += ` AND t.status = 'open' AND t.first_response IS NULL AND t.due < ?`
		args = append(args, time.Now().Unix())
	}
	if !f.Since.IsZero() {
		q += ` AND t.updated >= ?`
		args = append(args, f.Since.Unix())
	}
	rows, err := s.rdb.QueryContext(ctx, q+` ORDER BY t.id`, args...)
	if err != nil {
		return nil, fmt.Errorf("list tickets: %w", err)
	}
	defer rows.Close()
	out := []Ticket{}
	for rows.Next() {
		t, err := scanTicket(rows)
		if err != nil {
			return nil, fmt.Errorf("list tickets: %w", err)
		}
		out = append(out, t)
	}
	return out, rows.Err()
}

// Ticket returns one ticket with its messages, oldest first.
func (s *Store) Ticket(ctx context.Context, id int64) (Ticket, error) {
	t, err := scanTicket(s.rdb.QueryRowContext(ctx, `SELECT `+sqlTicketColumns+` FROM tickets t WHERE t.id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return Ticket{}, fmt.Errorf("ticket #%d: %w", id, ErrNoTicket)
	}
	if err != nil {
		return Ticket{}, fmt.Errorf("ticket #%d: %w", id, err)
	}
	if t.Messages, err = s.messages(ctx, id); err != nil {
		return t, err
	}
	if t.Participants, err = s.participants(ctx, id); err != nil {
		return t, err
	}
	t.History, err = s.history(ctx, id)
	return t, err
}

func (s *Store) participants(ctx context.Context, ticket int64) ([]Participant, error) {
	list, err := queryAll(ctx, s.rdb, func(r scanner) (Participant, error) {
		var p Participant
		return p, r.Scan(&p.Address, &p.Role)
	}, sqlParticipants, ticket)
	if err != nil {
		return nil, fmt.Errorf("participants of #%d: %w", ticket, err)
	}
	return list, nil
}

func (s *Store) history(ctx context.Context, ticket int64) ([]Event, error) {
	list, err := queryAll(ctx, s.rdb, func(r scanner) (Event, error) {
		var e Event
		var at int64
		err := r.Scan(&at, &e.Actor, &e.Kind, &e.Detail)
		e.At = unixUTC(at)
		return e, err
	}, sqlEvents, ticket)
	if err != nil {
		return nil, fmt.Errorf("history of #%d: %w", ticket, err)
	}
	return list, nil
}

type scanner interface{ Scan(...any) error }

// queryAll runs a read query and collects one value per row; never nil, for JSON.
func queryAll[T any](ctx context.Context, db *sql.DB, scan func(scanner) (T, error), q string, args ...any) ([]T, error) {
	rows, err := db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []T{}
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

func scanTicket(r scanner) (Ticket, error) {
	var t Ticket
	var created, updated int64
	var due, follows, merged, first sql.NullInt64
	err := r.Scan(&t.ID, &t.Subject, &t.Status, &t.Queue, &t.Category, &t.Priority, &t.Customer,
		&t.Assignee, &t.MessageCount, &created, &updated, &due, &follows, &merged, &first)
	if first.Valid {
		f := unixUTC(first.Int64)
		t.FirstResponse = &f
	}
	switch {
	case !due.Valid:
	case first.Valid && first.Int64 <= due.Int64:
		t.SLA = "met"
	case first.Valid:
		t.SLA = "missed"
	case time.Now().Unix() > due.Int64 && t.Status == "open":
		t.SLA = "overdue"
	}
	if follows.Valid {
		t.Follows = &follows.Int64
	}
	if merged.Valid {
		t.MergedInto = &merged.Int64
	}
	t.Created, t.Updated = unixUTC(created), unixUTC(updated)
	if due.Valid {
		d := unixUTC(due.Int64)
		t.Due = &d
	}
	return t, err
}

func unixUTC(sec int64) time.Time { return time.Unix(sec, 0).UTC() }

func (s *Store) messages(ctx context.Context, ticket int64) ([]Message, error) {
	rows, err := s.rdb.QueryContext(ctx, sqlMessagesOfTicket, ticket)
	if err != nil {
		return nil, fmt.Errorf("messages of #%d: %w", ticket, err)
	}
	defer rows.Close()
	out := []Message{}
	for rows.Next() {
		var m Message
		var date int64
		var to, cc, att, flags, notes, delivery, deliveryErr string
		var attempts int
		var next sql.NullInt64
		var outboxID int64
		if err := rows.Scan(&m.Direction, &m.Kind, &m.From, &to, &cc, &m.MessageID, &m.Subject, &date,
			&m.Text, &m.Body, &att, &m.MatchedBy, &flags, &notes, &m.InboxID, &delivery, &deliveryErr, &attempts, &next, &outboxID); err != nil {
			return nil, fmt.Errorf("messages of #%d: %w", ticket, err)
		}
		m.Date = unixUTC(date)
		if delivery != "" {
			m.Delivery = &Delivery{Status: delivery, Attempts: attempts, LastError: deliveryErr, OutboxID: outboxID}
			if next.Valid && delivery == "queued" {
				n := unixUTC(next.Int64)
				m.Delivery.NextAttempt = &n
			}
		}
		err := errors.Join(json.Unmarshal([]byte(to), &m.To), json.Unmarshal([]byte(cc), &m.Cc),
			json.Unmarshal([]byte(att), &m.Attachments), json.Unmarshal([]byte(flags), &m.Flags),
			json.Unmarshal([]byte(notes), &m.Notes))
		if err != nil {
			return nil, fmt.Errorf("messages of #%d: %w", ticket, err)
		}
		out = append(out, m)
	}
	return out, rows.Err()
}

// Export calls fn with every ticket (messages included) updated since the given time.
func (s *Store) Export(ctx context.Context, since time.Time, fn func(Ticket) error) error {
	list, err := s.Tickets(ctx, TicketFilter{Since: since})
	if err != nil {
		return err
	}
	for _, t := range list {
		full, err := s.Ticket(ctx, t.ID)
		if err != nil {
			return err
		}
		if err := fn(full); err != nil {
			return err
		}
	}
	return nil
}

// ErrNotComposed is returned by OutboundRaw for mail decided but not yet composed.
var ErrNotComposed = errors.New("not composed yet")

// OutboundRaw returns the bytes of an outbound mail exactly as sent (or as they will be).
func (s *Store) OutboundRaw(ctx context.Context, outboxID int64) ([]byte, error) {
	var raw []byte
	var status string
	err := s.rdb.QueryRowContext(ctx, sqlOutboxRaw, outboxID).Scan(&raw, &status)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("outbound mail %d: %w", outboxID, ErrNoMessage)
	}
	if err == nil && status == "compose" {
		err = ErrNotComposed
	}
	if err != nil {
		return nil, fmt.Errorf("outbound mail %d: %w", outboxID, err)
	}
	return raw, nil
}

// RawMessage returns the bytes of an accepted message exactly as received.
func (s *Store) RawMessage(ctx context.Context, inboxID int64) ([]byte, error) {
	var raw []byte
	err := s.rdb.QueryRowContext(ctx, sqlRawMessage, inboxID).Scan(&raw)
	if err != nil {
		return nil, fmt.Errorf("raw message %d: %w", inboxID, err)
	}
	return raw, nil
}

// Status is `replydesk status` (SPEC §10).
type Status struct {
	Intake         []IntakeStatus `json:"intake"`
	Accepted       int64          `json:"accepted"`    // messages stored
	Unfiled        int64          `json:"unprocessed"` // accepted, not yet filed into a ticket
	MalformedCount int64          `json:"malformed_count"`
	Overdue        []int64        `json:"overdue"`  // open tickets past their first-response due time
	Bouncing       int64          `json:"bouncing"` // addresses that get no auto-replies until they write
	Outbox         OutboxStatus   `json:"outbox"`
	Malformed      []Malformed    `json:"malformed"`
	SetAsideCount  int64          `json:"set_aside_count"` // could not be filed: see SetAside, refile
	SetAside       []SetAside     `json:"set_aside"`
	Tickets        map[string]int `json:"tickets"` // count by status
	SchemaVer      int            `json:"schema_version"`
	Database       string         `json:"database"`
	StatusTime     time.Time      `json:"time"`
}

// OutboxStatus counts outbound mail by state.
type OutboxStatus struct {
	Composing int64 `json:"composing"` // decided, not yet composed
	Queued    int64 `json:"queued"`    // not tried yet
	Retrying  int64 `json:"retrying"`  // failed temporarily, will be retried
	Failed    int64 `json:"failed"`    // failed for good, shown on the ticket
	Sent      int64 `json:"sent"`
}

// IntakeStatus is one ingest path.
type IntakeStatus struct {
	Path        string     `json:"path"`
	Listen      string     `json:"listen,omitempty"`
	Accepted    int64      `json:"accepted"`
	LastMessage *time.Time `json:"last_message"`
	LastError   string     `json:"last_error,omitempty"`
	LastErrorAt *time.Time `json:"last_error_at,omitempty"`
}

// Malformed is a message that could not be parsed cleanly; it is stored raw and filed.
type Malformed struct {
	Ticket  int64    `json:"ticket"`
	InboxID int64    `json:"inbox_id"`
	From    string   `json:"from"`
	Notes   []string `json:"notes"`
}

// maxMalformedListed bounds the malformed messages `status` lists (the count is exact).
const maxMalformedListed = 20

// Status reports intake paths, the processing backlog and malformed messages.
func (s *Store) Status(ctx context.Context) (Status, error) {
	st := Status{Tickets: map[string]int{}, SchemaVer: schemaVersion, Database: s.path, StatusTime: time.Now().UTC()}
	err := errors.Join(
		s.rdb.QueryRowContext(ctx, sqlCountAccepted).Scan(&st.Accepted),
		s.rdb.QueryRowContext(ctx, sqlCountUnprocessed).Scan(&st.Unfiled),
		s.rdb.QueryRowContext(ctx, sqlCountMalformed).Scan(&st.MalformedCount),
		s.rdb.QueryRowContext(ctx, sqlCountSetAside).Scan(&st.SetAsideCount),
		s.rdb.QueryRowContext(ctx, sqlCountBouncing).Scan(&st.Bouncing),
		s.rdb.QueryRowContext(ctx, sqlOutboxCounts).Scan(&st.Outbox.Queued, &st.Outbox.Retrying, &st.Outbox.Failed, &st.Outbox.Sent, &st.Outbox.Composing),
		s.overdue(ctx, &st),
		s.intakeStatus(ctx, &st), s.ticketCounts(ctx, &st), s.malformedList(ctx, &st), s.setAsideList(ctx, &st))
	if err != nil {
		return st, fmt.Errorf("status: %w", err)
	}
	return st, nil
}

func (s *Store) overdue(ctx context.Context, st *Status) (err error) {
	st.Overdue, err = queryAll(ctx, s.rdb, func(r scanner) (int64, error) {
		var id int64
		return id, r.Scan(&id)
	}, sqlOverdueTickets, time.Now().Unix())
	return err
}

func (s *Store) intakeStatus(ctx context.Context, st *Status) (err error) {
	st.Intake, err = queryAll(ctx, s.rdb, func(r scanner) (IntakeStatus, error) {
		var in IntakeStatus
		var lastOK, lastErrAt int64
		err := r.Scan(&in.Path, &in.Listen, &in.Accepted, &lastOK, &in.LastError, &lastErrAt)
		in.LastMessage, in.LastErrorAt = optTime(lastOK), optTime(lastErrAt)
		return in, err
	}, sqlIntakeStatus)
	return err
}

func optTime(sec int64) *time.Time {
	if sec == 0 {
		return nil
	}
	t := unixUTC(sec)
	return &t
}

func (s *Store) ticketCounts(ctx context.Context, st *Status) error {
	rows, err := s.rdb.QueryContext(ctx, sqlTicketCounts)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var status string
		var n int
		if err := rows.Scan(&status, &n); err != nil {
			return err
		}
		st.Tickets[status] = n
	}
	return rows.Err()
}

func (s *Store) malformedList(ctx context.Context, st *Status) (err error) {
	st.Malformed, err = queryAll(ctx, s.rdb, func(r scanner) (Malformed, error) {
		var m Malformed
		var notes string
		err := r.Scan(&m.Ticket, &m.InboxID, &m.From, &notes)
		if json.Unmarshal([]byte(notes), &m.Notes) != nil {
			m.Notes = []string{strings.TrimSpace(notes)}
		}
		return m, err
	}, sqlMalformedList, maxMalformedListed)
	return err
}

// MalformedCount is the number of messages flagged malformed.
func (s *Store) MalformedCount(ctx context.Context) (int64, error) {
	var n int64
	err := s.rdb.QueryRowContext(ctx, sqlCountMalformed).Scan(&n)
	return n, err
}
