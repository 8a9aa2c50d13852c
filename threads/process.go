package threads

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// processBatch is how many accepted messages one filing transaction carries: small
// enough that a filing transaction delays the accepts queued behind it by only a few ms.
const processBatch = 256

// While mail is arriving, the processor pauses between batches (yieldStep at a time, up
// to maxYield): a sender waiting for 250 goes first, and the backlog is filed at full
// speed as soon as arrivals pause. maxYield bounds the backlog under sustained load.
const (
	yieldStep = 20 * time.Millisecond
	maxYield  = 500 * time.Millisecond
)

// pending is an accepted message waiting to be filed.
type pending struct {
	id       int64
	received time.Time
	path     string
	mailFrom string
	rcpts    []string
	live     bool
	raw      []byte // dropped once parsed
	parsed   *Parsed
}

// RunProcessor files accepted messages into tickets until ctx ends: at once when woken by
// Accept, and every interval to pick up mail stored by another process (`ingest`).
func (s *Store) RunProcessor(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if _, err := s.ProcessPending(ctx); err != nil && ctx.Err() == nil {
			s.log.Error("processing accepted mail", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-s.wake:
		case <-t.C:
		}
	}
}

// ProcessPending files every accepted, unprocessed message, oldest first, and returns how
// many it filed. It is idempotent and resumable: a message is marked processed in the
// transaction that files it, so after a crash nothing is filed twice or skipped.
func (s *Store) ProcessPending(ctx context.Context) (int, error) {
	total := 0
	after := int64(0)
	for ctx.Err() == nil {
		batch, err := s.loadPending(ctx, after, processBatch)
		if err != nil {
			return total, err
		}
		if len(batch) == 0 {
			return total, nil
		}
		for _, m := range batch {
			m.parsed = s.parseLogged(m)
		}
		if err := s.write(ctx, func(tx *sql.Tx) error { return s.fileAll(tx, batch) }); err != nil {
			return total, fmt.Errorf("file messages %d-%d: %w", batch[0].id, batch[len(batch)-1].id, err)
		}
		total += len(batch)
		after = batch[len(batch)-1].id
		s.yieldToArrivals(ctx)
	}
	return total, ctx.Err()
}

// yieldToArrivals waits while messages keep arriving (each arrival wakes the processor).
func (s *Store) yieldToArrivals(ctx context.Context) {
	for waited := time.Duration(0); waited < maxYield; waited += yieldStep {
		select {
		case <-s.wake:
		default:
			return // nothing arrived since the last batch
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(yieldStep):
		}
	}
}

func (s *Store) loadPending(ctx context.Context, after int64, limit int) ([]*pending, error) {
	rows, err := s.rdb.QueryContext(ctx, sqlLoadPending, after, limit)
	if err != nil {
		return nil, fmt.Errorf("load accepted mail: %w", err)
	}
	defer rows.Close()
	var out []*pending
	for rows.Next() {
		var m pending
		var received int64
		var rcpts string
		if err := rows.Scan(&m.id, &received, &m.path, &m.mailFrom, &rcpts, &m.live, &m.raw); err != nil {
			return nil, fmt.Errorf("load accepted mail: %w", err)
		}
		m.received = time.Unix(received, 0).UTC()
		m.rcpts = strings.Split(rcpts, "\n")
		out = append(out, &m)
	}
	return out, rows.Err()
}

func (s *Store) parseLogged(m *pending) *Parsed {
	p := Parse(m.raw, s.cfg.Limits)
	m.raw = nil
	if p.Malformed {
		s.log.Warn("malformed message stored raw", "inbox", m.id, "notes", strings.Join(p.Notes, "; "))
	}
	return p
}

// fileAll files a batch inside one write transaction; the first message it cannot file
// fails the batch, which the writer then retries message by message.
func (s *Store) fileAll(tx *sql.Tx, batch []*pending) error {
	for _, m := range batch {
		if err := s.file(tx, m); err != nil {
			return fmt.Errorf("file message %d: %w", m.id, err)
		}
	}
	return nil
}

// file decides the ticket of one message, stores the parsed message, and marks the
// accepted row processed, all in the caller's transaction.
func (s *Store) file(tx *sql.Tx, m *pending) error {
	var processed bool
	if err := tx.Stmt(s.sql.inboxProcessed).QueryRow(m.id).Scan(&processed); err != nil {
		return err
	}
	if processed {
		return nil // another process filed it meanwhile
	}
	p := m.parsed
	date := p.Date
	if date.IsZero() || date.After(m.received.Add(24*time.Hour)) {
		date = m.received
	}
	r, err := s.route(tx, m)
	if err != nil {
		return err
	}
	ticket := r.ticket
	if ticket == 0 {
		ticket, err = s.openTicket(tx, m, date)
		if err != nil {
			return err
		}
	} else if _, err := tx.Stmt(s.sql.customerReplied).Exec(m.received.Unix(), ticket); err != nil {
		return err
	}
	flags := r.flags
	if p.Malformed {
		flags = append(flags, "malformed")
	}
	res, err := tx.Stmt(s.sql.insertMessage).Exec(ticket, m.id, p.MessageID, p.From, jsonList(p.To), jsonList(p.Cc), p.Subject, date.Unix(),
		nil, p.Body, jsonValue(p.Attachments), r.matchedBy, jsonList(flags), jsonList(p.Notes), p.Malformed)
	if err != nil {
		return err
	}
	row, err := res.LastInsertId()
	if err != nil {
		return err
	}
	insertRef := tx.Stmt(s.sql.insertRef)
	for _, ref := range referencesOf(p) {
		if _, err := insertRef.Exec(row, ref); err != nil {
			return err
		}
	}
	if _, err := tx.Stmt(s.sql.markProcessed).Exec(m.id); err != nil {
		return err
	}
	s.log.Info("message filed", "ticket", ticket, "inbox", m.id, "matched_by", r.matchedBy,
		"from", p.From, "message_id", p.MessageID, "malformed", p.Malformed)
	return nil
}

func (s *Store) openTicket(tx *sql.Tx, m *pending, date time.Time) (int64, error) {
	p := m.parsed
	subject := p.Subject
	if subject == "" {
		subject = "(no subject)"
	}
	customer := p.From
	if customer == "" {
		customer = m.mailFrom
	}
	now := m.received.Unix()
	res, err := tx.Stmt(s.sql.insertTicket).Exec(subject, s.queueFor(m), "other", customer, now, now)
	if err != nil {
		return 0, err
	}
	return res.LastInsertId()
}

// queueFor picks the queue from the first envelope recipient that is a support address,
// then from the To and Cc headers; else the first configured address's queue.
func (s *Store) queueFor(m *pending) string {
	candidates := append(append(append([]string{}, m.rcpts...), m.parsed.To...), m.parsed.Cc...)
	for _, c := range candidates {
		if a, ok := s.address(c); ok {
			return a.Queue
		}
	}
	if len(s.cfg.Addresses) > 0 {
		return s.cfg.Addresses[0].Queue
	}
	return "support"
}

// address finds the configured address that addr (or its +tag form) names.
func (s *Store) address(addr string) (Address, bool) {
	local, domain, ok := strings.Cut(strings.ToLower(addr), "@")
	if !ok {
		return Address{}, false
	}
	local, _, _ = strings.Cut(local, "+")
	for _, a := range s.cfg.Addresses {
		if strings.EqualFold(a.Email, local+"@"+domain) {
			return a, true
		}
	}
	return Address{}, false
}

// referencesOf lists the ids a message names, In-Reply-To first.
func referencesOf(p *Parsed) []string {
	seen := map[string]bool{}
	var out []string
	for _, id := range append(append([]string{}, p.InReplyTo...), p.References...) {
		if !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	return out
}

func jsonList(v []string) string {
	if v == nil {
		v = []string{}
	}
	return jsonValue(v)
}

func jsonValue(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // only plain strings and structs of them are marshalled here
	}
	if string(b) == "null" {
		return "[]"
	}
	return string(b)
}
