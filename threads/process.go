package threads

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// A filing transaction carries at most processBatch messages and batchBytes of raw mail:
// small enough that it delays the accepts queued behind it by only a few ms, and that
// memory does not follow the size of what arrives (parsing runs one batch ahead, so about
// two batches are in memory, plus one message).
// While senders wait for their commit (Busy), a filing transaction carries only
// busyBatch messages, so it lengthens the commit they share by little.
const (
	processBatch = 256
	busyBatch    = 32
	batchBytes   = 32 << 20
)

// fileAttempts is how often a message is tried on its own before it is set aside.
const fileAttempts = 3

// While mail is arriving, the processor pauses between batches (yieldStep at a time, up
// to maxYield): a sender waiting for 250 goes first, and the backlog is filed at full
// speed as soon as arrivals pause. maxYield bounds the backlog under sustained load.
const (
	yieldStep = 20 * time.Millisecond
	maxYield  = 500 * time.Millisecond
)

// pending is an accepted message waiting to be filed.
type pending struct {
	id        int64
	received  time.Time
	path      string
	mailFrom  string
	rcpts     []string
	live      bool
	size      int64 // of raw
	attempts  int   // filing attempts on its own so far (fileAlone)
	lastError string
	raw       []byte // dropped once parsed
	parsed    *Parsed
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
// many it filed or set aside. It is idempotent and resumable: a message is marked
// processed in the transaction that files it, so after a crash nothing is filed twice or
// skipped. Parsing runs one batch ahead of filing, so the two overlap on two cores. An
// error means storage trouble: what was not filed stays waiting for the next call.
func (s *Store) ProcessPending(ctx context.Context) (int, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	batches := make(chan []*pending)
	loadErr := make(chan error, 1)
	go s.parseAhead(ctx, batches, loadErr)
	total := 0
	for batch := range batches {
		queued, err := s.fileBatch(ctx, batch)
		if queued > 0 && s.onQueued != nil {
			s.onQueued()
		}
		if err != nil {
			return total, fmt.Errorf("file messages %d-%d: %w", batch[0].id, batch[len(batch)-1].id, err)
		}
		total += len(batch)
		s.yieldToArrivals(ctx)
	}
	select {
	case err := <-loadErr:
		return total, err
	default:
		return total, ctx.Err()
	}
}

// fileBatch files a batch in one transaction. When a message makes that fail, each
// message is filed in a transaction of its own, so the others go in; one that fails
// fileAttempts times is set aside (setAside) and filing goes on. A storage failure
// (disk full, I/O error, the store closing) is returned as is: nothing is set aside for
// it, and the batch waits for the next run.
func (s *Store) fileBatch(ctx context.Context, batch []*pending) (queued int, err error) {
	var culprit error
	err = s.writeBackground(ctx, func(tx *sql.Tx) (err error) {
		queued, culprit = s.fileAll(tx, batch)
		return culprit
	})
	if err == nil {
		return queued, nil
	}
	if culprit == nil || storageTrouble(culprit) {
		return 0, err
	}
	s.log.Warn("a batch failed; filing its messages one by one", "first", batch[0].id, "last", batch[len(batch)-1].id, "err", culprit)
	queued = 0
	for _, m := range batch {
		n, err := s.fileAlone(ctx, m)
		queued += n
		if err != nil {
			return queued, err
		}
	}
	return queued, nil
}

// fileAlone files one message in its own transaction. Its failed attempts are counted
// durably, so a message that cannot be filed is set aside even across restarts.
func (s *Store) fileAlone(ctx context.Context, m *pending) (int, error) {
	for m.attempts < fileAttempts {
		var n int
		var fileErr error
		err := s.writeBackground(ctx, func(tx *sql.Tx) error {
			n, fileErr = s.file(tx, m)
			return fileErr
		})
		if err == nil {
			return n, nil
		}
		if fileErr == nil || storageTrouble(fileErr) {
			return 0, err
		}
		s.log.Warn("message could not be filed", "inbox", m.id, "attempt", m.attempts+1, "err", fileErr)
		if err := s.countAttempt(ctx, m, fileErr); err != nil {
			return 0, err
		}
	}
	return 0, s.setAside(ctx, m)
}

func (s *Store) countAttempt(ctx context.Context, m *pending, cause error) error {
	err := s.writeBackground(ctx, func(tx *sql.Tx) error {
		_, err := tx.Exec(sqlCountFileAttempt, cause.Error(), m.id)
		return err
	})
	if err == nil {
		m.attempts++
		m.lastError = cause.Error()
	}
	return err
}

// setAside takes a message out of filing: it stays stored raw, flagged with the reason,
// listed by `status` and `show -inbox`, until `replydesk refile` puts it back.
func (s *Store) setAside(ctx context.Context, m *pending) error {
	reason := m.lastError
	if reason == "" {
		reason = fmt.Sprintf("filing failed %d times", m.attempts)
	}
	now := time.Now()
	err := s.writeBackground(ctx, func(tx *sql.Tx) error {
		_, err := tx.Exec(sqlSetAside, reason, now.Unix(), m.id)
		return err
	})
	if err != nil {
		return err
	}
	s.log.Error("message set aside: it could not be filed; fix the cause, then run replydesk refile",
		"inbox", m.id, "attempts", m.attempts, "reason", reason)
	if s.onSetAside != nil {
		s.onSetAside(m.id, reason)
	}
	return nil
}

// storageTrouble tells a failure of the store (full, read-only, I/O, busy, closing) from
// a failure caused by one message: only the latter sets a message aside.
func storageTrouble(err error) bool {
	if errors.Is(err, ErrClosed) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var se *sqlite.Error
	if !errors.As(err, &se) {
		return false
	}
	switch se.Code() & 0xff {
	case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED, sqlite3.SQLITE_NOMEM, sqlite3.SQLITE_READONLY,
		sqlite3.SQLITE_IOERR, sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_FULL, sqlite3.SQLITE_CANTOPEN,
		sqlite3.SQLITE_PROTOCOL, sqlite3.SQLITE_NOTADB:
		return true
	}
	return false
}

// isBusy tells whether err is SQLite's "database is locked" by another connection.
func isBusy(err error) bool {
	var se *sqlite.Error
	return errors.As(err, &se) && se.Code()&0xff == sqlite3.SQLITE_BUSY
}

// parseAhead loads and parses batches of accepted mail in id order and hands them over.
func (s *Store) parseAhead(ctx context.Context, out chan<- []*pending, errc chan<- error) {
	defer close(out)
	after := int64(0)
	for {
		batch, err := s.loadBatch(ctx, after)
		if err != nil || len(batch) == 0 {
			if err != nil {
				errc <- err
			}
			return
		}
		after = batch[len(batch)-1].id
		select {
		case out <- batch:
		case <-ctx.Done():
			return
		}
	}
}

// yieldToArrivals waits while mail arrives fast (Busy), up to maxYield: the filing
// transaction would otherwise lengthen the commits of the senders. At a moderate rate it
// waits one step at most, so mail is filed and answered within milliseconds.
func (s *Store) yieldToArrivals(ctx context.Context) {
	for waited := time.Duration(0); waited < maxYield && s.Busy(); waited += yieldStep {
		select {
		case <-ctx.Done():
			return
		case <-time.After(yieldStep):
		}
	}
}

// loadBatch reads the next waiting messages after id after, one raw message at a time,
// parsing each and dropping its bytes, until processBatch messages or batchBytes of raw
// mail and text (always at least one message).
func (s *Store) loadBatch(ctx context.Context, after int64) ([]*pending, error) {
	limit := processBatch
	if s.Busy() {
		limit = busyBatch
	}
	heads, err := s.loadPending(ctx, after, limit)
	if err != nil {
		return nil, err
	}
	var batch []*pending
	var bytes int64
	for _, m := range heads {
		if len(batch) > 0 && bytes+m.size > batchBytes {
			break
		}
		if err := s.rdb.QueryRowContext(ctx, sqlRawMessage, m.id).Scan(&m.raw); err != nil {
			return nil, fmt.Errorf("load accepted message %d: %w", m.id, err)
		}
		m.parsed = s.parseLogged(m)
		bytes += m.size + int64(len(m.parsed.Body))
		batch = append(batch, m)
	}
	return batch, nil
}

// loadPending lists waiting messages without their bytes.
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
		if err := rows.Scan(&m.id, &received, &m.path, &m.mailFrom, &rcpts, &m.live, &m.size, &m.attempts, &m.lastError); err != nil {
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
// fails the batch (fileBatch then files them one by one).
func (s *Store) fileAll(tx *sql.Tx, batch []*pending) (queued int, err error) {
	for _, m := range batch {
		n, err := s.file(tx, m)
		if err != nil {
			return 0, fmt.Errorf("file message %d: %w", m.id, err)
		}
		queued += n
	}
	return queued, nil
}

// file decides the ticket of one message, stores the parsed message, queues the mail it
// causes, and marks the accepted row processed, all in the caller's transaction. It
// returns how many mails it queued.
func (s *Store) file(tx *sql.Tx, m *pending) (int, error) {
	f, err := s.fileOne(tx, m)
	if f == nil {
		return 0, err
	}
	return f.queued, err
}

func (s *Store) fileOne(tx *sql.Tx, m *pending) (*filing, error) {
	var processed bool
	if err := tx.Stmt(s.sql.inboxProcessed).QueryRow(m.id).Scan(&processed); err != nil {
		return nil, err
	}
	if processed {
		return nil, nil // another process filed it meanwhile
	}
	if isSent(m) {
		return s.fileSent(tx, m) // sent.go: an agent's reply from the Sent folder, never answered
	}
	f := &filing{m: m, date: messageDate(m)}
	null := m.mailFrom == "" && (m.path == "smtp" || m.path == "lmtp")
	var why string
	f.auto, why = autoGenerated(m.parsed, null)
	if f.auto {
		f.flags = append(f.flags, "auto_generated")
		f.notes = append(f.notes, "automatic mail ("+why+"): never answered")
	}
	if f.auto && deliveryReport(m.parsed, null) {
		f.flags = append(f.flags, "dsn")
		if done, err := s.fileBounce(tx, f); err != nil || done {
			return f, err
		}
	}
	r, err := s.route(tx, m)
	if err != nil {
		return f, err
	}
	f.routing = r
	if err := s.placeInTicket(tx, f); err != nil {
		return f, err
	}
	if err := s.alertAgents(tx, f); err != nil {
		return f, err
	}
	merges, err := s.mergesDue(tx, f)
	if err != nil {
		return f, err
	}
	if err := s.storeFiled(tx, f); err != nil {
		return f, err
	}
	for _, from := range merges {
		if err := s.mergeTicket(tx, from, f.ticket, f.m.received, f.m.parsed.MessageID); err != nil {
			return f, err
		}
	}
	return f, s.respond(tx, f)
}

// filing is one message on its way into a ticket.
type filing struct {
	m       *pending
	date    time.Time
	auto    bool
	flags   []string // in addition to routing's
	notes   []string
	kind    string
	routing routing
	ticket  int64
	event   string
	queued  int       // outbound mails queued by the Responder
	row     int64     // the stored message
	stored  []string  // its notes as stored
	act     *agentAct // an agent's reply: what it does; or what an agent is told
}

// messageDate is the Date header, unless it is missing or in the future.
func messageDate(m *pending) time.Time {
	d := m.parsed.Date
	if d.IsZero() || d.After(m.received.Add(24*time.Hour)) {
		return m.received
	}
	return d
}

// placeInTicket opens a ticket or updates the one routing chose, per the message's kind.
func (s *Store) placeInTicket(tx *sql.Tx, f *filing) error {
	now := f.m.received.Unix()
	f.kind = "customer"
	switch {
	case f.auto:
		f.kind = "auto"
	case f.routing.agent != "":
		f.kind = "agent"
	}
	if f.routing.ticket == 0 {
		id, err := s.openTicket(tx, f)
		f.ticket, f.event = id, "opened"
		return err
	}
	f.ticket = f.routing.ticket
	var err error
	if f.routing.duplicate() {
		// Another copy of a message already filed (sent to two of our addresses): kept,
		// and it changes nothing: no status, no commands, no mail.
		f.event = "duplicate"
		if f.routing.dupKind != "" && !f.auto {
			f.kind = f.routing.dupKind
		}
		_, err = tx.Stmt(s.sql.touchTicket).Exec(now, f.ticket)
		return err
	}
	switch f.kind {
	case "auto":
		f.event = "auto_mail"
		_, err = tx.Stmt(s.sql.touchTicket).Exec(now, f.ticket)
	case "agent":
		// What an agent's reply does to the ticket depends on its commands (agentActs).
		f.event = "agent_reply"
		if _, err = tx.Stmt(s.sql.touchTicket).Exec(now, f.ticket); err == nil {
			err = s.agentActs(tx, f)
		}
	default:
		f.event = "customer_reply"
		_, err = tx.Stmt(s.sql.customerReplied).Exec(now, f.ticket)
	}
	return err
}

// storeFiled writes the message, its references, participants and event, and marks
// the accepted row processed.
func (s *Store) storeFiled(tx *sql.Tx, f *filing) error {
	p := f.m.parsed
	flags := append(append([]string{}, f.routing.flags...), f.flags...)
	if p.Malformed {
		flags = append(flags, "malformed")
	}
	notes := append(append(append([]string{}, f.routing.notes...), f.notes...), p.Notes...)
	row, err := s.insertMessage(tx, f.ticket, f.m.id, "in", f.kind, p, f.date, f.routing.matchedBy, flags, notes)
	if err != nil {
		return err
	}
	f.row, f.stored = row, notes
	insertRef := tx.Stmt(s.sql.insertRef)
	for _, ref := range referencesOf(p) {
		if _, err := insertRef.Exec(row, ref); err != nil {
			return err
		}
	}
	if err := s.addParticipants(tx, f); err != nil {
		return err
	}
	if !f.auto && p.From != "" {
		// A human wrote from this address: it may get auto-replies again.
		if _, err := tx.Stmt(s.sql.clearBouncing).Exec(strings.ToLower(p.From)); err != nil {
			return err
		}
	}
	detail := f.routing.matchedBy
	if f.routing.follows != 0 {
		detail = fmt.Sprintf("follows #%d", f.routing.follows)
	}
	if err := s.addEvent(tx, f.ticket, f.m.received, orUnknown(p.From), f.event, detail); err != nil {
		return err
	}
	if _, err := tx.Stmt(s.sql.markProcessed).Exec(f.m.id); err != nil {
		return err
	}
	s.log.Info("message filed", "ticket", f.ticket, "inbox", f.m.id, "matched_by", f.routing.matchedBy,
		"kind", f.kind, "from", p.From, "message_id", p.MessageID, "flags", strings.Join(flags, ","))
	return nil
}

func (s *Store) insertMessage(tx *sql.Tx, ticket, inboxID int64, direction, kind string, p *Parsed, date time.Time,
	matchedBy string, flags, notes []string) (int64, error) {
	var inbox any
	if inboxID != 0 {
		inbox = inboxID
	}
	var text any // NULL: the same as body
	if direction == "in" && newOrBody(p) != strings.TrimSpace(p.Body) {
		text = newOrBody(p)
	}
	res, err := tx.Stmt(s.sql.insertMessage).Exec(ticket, inbox, direction, kind, p.MessageID, p.From,
		jsonList(p.To), jsonList(p.Cc), p.Subject, date.Unix(), text, p.Body, jsonValue(p.Attachments),
		matchedBy, jsonList(flags), jsonList(notes), p.Malformed, listID(p))
	if err != nil {
		return 0, err
	}
	return res.LastInsertId()
}

func (s *Store) addEvent(tx *sql.Tx, ticket int64, at time.Time, actor, kind, detail string) error {
	_, err := tx.Stmt(s.sql.addEvent).Exec(ticket, at.Unix(), actor, kind, detail)
	return err
}

// addParticipants: the customer of a new ticket, an agent who acted, and whoever a
// participant copied (To/Cc other than our own addresses). Strangers add nobody.
func (s *Store) addParticipants(tx *sql.Tx, f *filing) error {
	p := f.m.parsed
	add := tx.Stmt(s.sql.addParticipant)
	from := strings.ToLower(p.From)
	if f.kind == "auto" || from == "" {
		return nil
	}
	role := "cc"
	switch {
	case f.kind == "agent" || f.kind == "note":
		role = "agent"
	case f.event == "opened":
		role = "customer"
	default:
		// A real participant only, and never an agent's address on mail that did not
		// pass as theirs: a From is forgeable, and whoever it copies would receive every
		// agent reply on the ticket.
		if s.isAgent(from) {
			return nil
		}
		if ok, err := s.participates(tx, f.ticket, from); err != nil || !ok {
			return err
		}
		if f.routing.matchedBy == "subject" {
			// Only a ticket number (guessable) and a From (forgeable) led here: whom it
			// copies is not added, or a forger could receive every agent reply.
			return nil
		}
	}
	if _, err := add.Exec(f.ticket, from, role); err != nil {
		return err
	}
	copied := 0
	for _, a := range append(append([]string{}, p.To...), p.Cc...) {
		a = strings.ToLower(a)
		if _, ours := s.address(a); ours || a == from || s.isAgent(a) {
			continue
		}
		if copied++; copied > maxCopied {
			f.notes = append(f.notes, fmt.Sprintf("more than %d people copied: only the first %d take part", maxCopied, maxCopied))
			break
		}
		if _, err := add.Exec(f.ticket, a, "cc"); err != nil {
			return err
		}
	}
	return nil
}

// maxCopied caps the people one message adds to a ticket (each gets every agent reply).
const maxCopied = 20

// openTicket starts a ticket: queue from the address the mail came to, category from
// that address or the text, first-response due time from the SLA. Automatic mail opens
// a suspended ticket: nobody is notified, no SLA.
func (s *Store) openTicket(tx *sql.Tx, f *filing) (int64, error) {
	m, p := f.m, f.m.parsed
	subject := p.Subject
	if subject == "" {
		subject = "(no subject)"
	}
	customer := strings.ToLower(p.From)
	if customer == "" {
		customer = strings.ToLower(m.mailFrom)
	}
	status := "open"
	var due any
	queue, category := s.queueAndCategory(m)
	if f.auto {
		status = "suspended"
	} else {
		due = m.received.Add(s.slaFor(category)).Unix()
	}
	var follows any
	if f.routing.follows != 0 {
		follows = f.routing.follows
	}
	now := m.received.Unix()
	res, err := tx.Stmt(s.sql.insertTicket).Exec(subject, status, queue, category, customer, now, now, due, follows)
	if err != nil {
		return 0, err
	}
	return res.LastInsertId()
}

// queueAndCategory: the first of our addresses the mail came to (envelope, then To/Cc)
// gives the queue, and the category when its +tag or its configuration names one; else
// the category comes from the subject and text.
func (s *Store) queueAndCategory(m *pending) (queue, category string) {
	queue = "support"
	if len(s.cfg.Addresses) > 0 {
		queue = s.cfg.Addresses[0].Queue
	}
	candidates := append(append(append([]string{}, m.rcpts...), m.parsed.To...), m.parsed.Cc...)
	for _, c := range candidates {
		a, ok := s.address(c)
		if !ok {
			continue
		}
		queue = a.Queue
		if tag := plusTag(c); validCategory(tag) {
			return queue, tag
		}
		if a.Category != "" {
			return queue, a.Category
		}
		break
	}
	return queue, categoryFromText(m.parsed.Subject, m.parsed.Body)
}

func plusTag(addr string) string {
	local, _, _ := strings.Cut(strings.ToLower(addr), "@")
	_, tag, _ := strings.Cut(local, "+")
	return tag
}

// DefaultSLA is the first-response target per category when [sla] does not say.
var DefaultSLA = map[string]time.Duration{
	"billing": 24 * time.Hour, "account": 24 * time.Hour,
	"technical": 48 * time.Hour, "feature": 48 * time.Hour, "other": 48 * time.Hour,
}

func (s *Store) slaFor(category string) time.Duration {
	if d, ok := s.cfg.SLA[category]; ok {
		return d
	}
	return DefaultSLA[category]
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

func jsonStrings(s string) []string {
	var out []string
	json.Unmarshal([]byte(s), &out)
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
