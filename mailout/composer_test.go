package mailout

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/mail"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/replydesk/replydesk/mailin"
	"github.com/replydesk/replydesk/templates"
	"github.com/replydesk/replydesk/threads"
)

// Filing records intents; a crash before they are composed loses nothing: after a
// restart each is composed once, with the Message-ID chosen when it was decided (so a
// reply that came in meanwhile already threads), and composing again changes nothing.
func TestIntentsSurviveARestartAndComposeOnce(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	open := func() (*threads.Store, *Responder) {
		store, err := threads.Open(threads.Config{DataDir: dir,
			Addresses: []threads.Address{{Email: "support@example.test", Queue: "support"}}}, quiet)
		if err != nil {
			t.Fatal(err)
		}
		tpl, err := templates.Load("")
		if err != nil {
			t.Fatal(err)
		}
		r := NewResponder(ResponderConfig{Helpdesk: "Support", DefaultLanguage: "en", OurAddresses: []string{"support@example.test"},
			Agents: []Agent{{Email: "ana@example.test"}, {Email: "bo@example.test"}, {Email: "cy@example.test"}}, Log: quiet}, tpl, store.Tokens())
		store.SetResponder(r, nil)
		return store, r
	}
	store, _ := open()
	for i := range 5 {
		raw := fmt.Sprintf("From: c%d@example.com\r\nTo: support@example.test\r\nSubject: Invoice %d charged twice\r\nMessage-ID: <in%d@example.com>\r\n\r\nInvoice %d was charged twice.\r\n", i, i, i, i)
		if _, err := store.Accept(context.Background(), mailin.Envelope{Path: mailin.PathSMTP, MailFrom: fmt.Sprintf("c%d@example.com", i), Live: true}, []byte(raw)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := store.ProcessPending(context.Background()); err != nil {
		t.Fatal(err)
	}
	st, _ := store.Status(context.Background())
	if st.Outbox.Composing != 10 || st.Outbox.Queued != 0 {
		t.Fatalf("after filing: outbox %+v; want 10 intents (5 confirmations, 5 notifications to all three agents)", st.Outbox)
	}
	tk, err := store.Ticket(context.Background(), 1)
	if err != nil {
		t.Fatal(err)
	}
	decided := map[string]string{} // kind -> Message-ID chosen at filing
	for _, m := range tk.Messages {
		if m.Direction == "out" {
			decided[m.Flags[0]] = m.MessageID
		}
	}
	store.Close() // the crash: nothing composed

	store, r := open()
	defer store.Close()
	composeAll(t, store, r)
	composeAll(t, store, r)
	st, _ = store.Status(context.Background())
	if st.Outbox.Composing != 0 || st.Outbox.Queued != 10 {
		t.Fatalf("after the restart: outbox %+v; want 10 queued, none left to compose", st.Outbox)
	}
	items, err := store.DueMail(context.Background(), farFuture, 100)
	if err != nil {
		t.Fatal(err)
	}
	for _, it := range items {
		if it.Ticket != 1 {
			continue
		}
		msg, err := mail.ReadMessage(bytes.NewReader(it.Raw))
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.Trim(msg.Header.Get("Message-Id"), "<>"); got != decided[it.Kind] {
			t.Errorf("%s: Message-ID %s, decided %s", it.Kind, got, decided[it.Kind])
		}
		if it.Kind == "notification" && (len(it.Rcpts) != 3 || !strings.Contains(msg.Header.Get("Reply-To"), "support+a1-")) {
			t.Errorf("notification to %v, Reply-To %s: want one mail to all three agents with a team token", it.Rcpts, msg.Header.Get("Reply-To"))
		}
	}
	tk, _ = store.Ticket(context.Background(), 1)
	for _, m := range tk.Messages {
		if m.Direction == "out" && (m.Subject == "" || m.Text == "") {
			t.Errorf("outbound %s on the ticket without its composed subject/text: %+v", m.Flags, m)
		}
	}
}

// Run overlaps each round's commit with the next round: every intent of several rounds
// is composed exactly once, and intents filed after it caught up are composed too.
func TestComposerRunComposesEveryRound(t *testing.T) {
	t.Parallel()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	store, err := threads.Open(threads.Config{DataDir: t.TempDir(),
		Addresses: []threads.Address{{Email: "support@example.test", Queue: "support"}}}, quiet)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	tpl, err := templates.Load("")
	if err != nil {
		t.Fatal(err)
	}
	r := NewResponder(ResponderConfig{Helpdesk: "Support", DefaultLanguage: "en", OurAddresses: []string{"support@example.test"}, Log: quiet}, tpl, store.Tokens())
	store.SetResponder(r, nil)
	file := func(from, to int) {
		for i := from; i < to; i++ {
			raw := fmt.Sprintf("From: c%d@example.com\r\nTo: support@example.test\r\nSubject: Order %d\r\nMessage-ID: <run%d@example.com>\r\n\r\nOrder %d is late.\r\n", i, i, i, i)
			if _, err := store.Accept(context.Background(), mailin.Envelope{Path: mailin.PathSMTP, MailFrom: fmt.Sprintf("c%d@example.com", i), Live: true}, []byte(raw)); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := store.ProcessPending(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	const first, more = 3*composeBatch + 7, composeBatch + 3
	file(0, first)
	c := NewComposer(store, r, 2, quiet)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); c.Run(ctx) }()
	waitQueued := func(n int64) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			st, err := store.Status(context.Background())
			if err == nil && st.Outbox.Queued == n && st.Outbox.Composing == 0 {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("outbox %+v, want %d queued and none composing", st.Outbox, n)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	waitQueued(first)
	file(first, first+more) // above where Run stopped
	c.Wake()
	waitQueued(first + more)
	cancel()
	<-done
	items, err := store.DueMail(context.Background(), farFuture, 10*(first+more))
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]bool{}
	for _, it := range items {
		msg, err := mail.ReadMessage(bytes.NewReader(it.Raw))
		if err != nil {
			t.Fatal(err)
		}
		ids[msg.Header.Get("Message-Id")] = true
	}
	if len(items) != first+more || len(ids) != first+more {
		t.Fatalf("%d mails queued with %d distinct Message-IDs, want %d", len(items), len(ids), first+more)
	}
}

// Schema 6 moved composed mail out of the outbox row: a database of version 5 with
// composed mail waiting keeps every byte of it, for delivery and for show -outbox.
func TestComposedMailSurvivesTheMigrationToSchema6(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	open := func() *threads.Store {
		store, err := threads.Open(threads.Config{DataDir: dir,
			Addresses: []threads.Address{{Email: "support@example.test", Queue: "support"}}}, quiet)
		if err != nil {
			t.Fatal(err)
		}
		return store
	}
	store := open()
	tpl, err := templates.Load("")
	if err != nil {
		t.Fatal(err)
	}
	r := NewResponder(ResponderConfig{Helpdesk: "Support", DefaultLanguage: "en", OurAddresses: []string{"support@example.test"}, Log: quiet}, tpl, store.Tokens())
	store.SetResponder(r, nil)
	for i := range 3 {
		raw := fmt.Sprintf("From: m%d@example.com\r\nTo: support@example.test\r\nSubject: Order %d\r\nMessage-ID: <mig%d@example.com>\r\n\r\nOrder %d is late.\r\n", i, i, i, i)
		if _, err := store.Accept(context.Background(), mailin.Envelope{Path: mailin.PathSMTP, MailFrom: fmt.Sprintf("m%d@example.com", i), Live: true}, []byte(raw)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := store.ProcessPending(context.Background()); err != nil {
		t.Fatal(err)
	}
	composeAll(t, store, r)
	before, err := store.DueMail(context.Background(), farFuture, 100)
	if err != nil || len(before) != 3 {
		t.Fatalf("due before: %d, %v", len(before), err)
	}
	store.Close()

	// Back to version 5: the bytes in the outbox row, no outbox_raw.
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, "replydesk.db"))
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`UPDATE outbox SET raw = (SELECT raw FROM outbox_raw r WHERE r.id = outbox.id) WHERE id IN (SELECT id FROM outbox_raw)`,
		`DROP TABLE outbox_raw`, `PRAGMA user_version = 5`,
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	db.Close()

	store = open()
	defer store.Close()
	after, err := store.DueMail(context.Background(), farFuture, 100)
	if err != nil || len(after) != len(before) {
		t.Fatalf("due after the migration: %d, %v", len(after), err)
	}
	for i, it := range after {
		shown, err := store.OutboundRaw(context.Background(), it.ID)
		if it.ID != before[i].ID || !bytes.Equal(it.Raw, before[i].Raw) || err != nil || !bytes.Equal(shown, it.Raw) {
			t.Errorf("mail %d after the migration: %d bytes due, %d shown (%v); %d bytes before", it.ID, len(it.Raw), len(shown), err, len(before[i].Raw))
		}
	}
}

// flakyComposeQueue holds intents in memory; one Composed commit and one read of a
// received message fail, as storage trouble would.
type flakyComposeQueue struct {
	mu       sync.Mutex
	waiting  map[int64]bool // intents not stored yet
	max      int64
	commits  int           // Composed calls
	storedAt map[int64]int // intent -> the Composed call that stored it
	failCall int           // this Composed call fails (0: none)
	failRead int64         // the first read for this intent fails (0: none)
}

func newFlakyComposeQueue(n int) *flakyComposeQueue {
	q := &flakyComposeQueue{waiting: map[int64]bool{}, storedAt: map[int64]int{}, max: int64(n)}
	for id := int64(1); id <= q.max; id++ {
		q.waiting[id] = true
	}
	return q
}

func (q *flakyComposeQueue) ComposeDue(_ context.Context, after int64, limit int) ([]threads.ToCompose, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	var due []threads.ToCompose
	for id := after + 1; id <= q.max && len(due) < limit; id++ {
		if q.waiting[id] {
			// Unreadable intent data: composing fails at once and stores the failure.
			due = append(due, threads.ToCompose{OutboxID: id, Ticket: id, Kind: "notification", Data: []byte("x"), InboxID: id, Attachments: true})
		}
	}
	return due, nil
}

func (q *flakyComposeQueue) Composed(_ context.Context, mails []threads.Composed) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.commits++
	if q.commits == q.failCall {
		return errors.New("disk I/O error")
	}
	for _, m := range mails {
		if !q.waiting[m.OutboxID] {
			return fmt.Errorf("intent %d stored twice", m.OutboxID)
		}
		delete(q.waiting, m.OutboxID)
		q.storedAt[m.OutboxID] = q.commits
	}
	return nil
}

func (q *flakyComposeQueue) RawMessage(_ context.Context, id int64) ([]byte, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if id == q.failRead {
		q.failRead = 0
		return nil, errors.New("disk I/O error")
	}
	return []byte("From: a@example.com\r\n\r\nhi\r\n"), nil
}

// An intent left waiting by a round (its commit failed, or the message it is about could
// not be read) is composed again within a round or two, not only once the composer has
// caught up with everything filed after it.
func TestComposerRetriesWhatARoundLeftSoon(t *testing.T) {
	t.Parallel()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	tpl, err := templates.Load("")
	if err != nil {
		t.Fatal(err)
	}
	r := NewResponder(ResponderConfig{Helpdesk: "Support", DefaultLanguage: "en", OurAddresses: []string{"support@example.test"}, Log: quiet},
		tpl, threads.NewTokens([]byte("0123456789abcdef0123456789abcdef")))
	for name, setup := range map[string]func(*flakyComposeQueue){
		"first commit fails":   func(q *flakyComposeQueue) { q.failCall = 1 },
		"first read fails":     func(q *flakyComposeQueue) { q.failRead = 1 },
		"a later commit fails": func(q *flakyComposeQueue) { q.failCall = 3 },
	} {
		q := newFlakyComposeQueue(20 * composeBatch)
		setup(q)
		c := NewComposer(q, r, 2, quiet)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); c.Run(ctx) }()
		deadline := time.Now().Add(60 * time.Second)
		for {
			q.mu.Lock()
			left := len(q.waiting)
			q.mu.Unlock()
			if left == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: %d intents still waiting", name, left)
			}
			c.Wake() // as filing would, mail keeps coming
			time.Sleep(5 * time.Millisecond)
		}
		cancel()
		<-done
		// The round left behind is the first (ids 1-128) or, when commit 3 fails, the third.
		first := int64(1)
		if q.failCall == 3 {
			first = 2*composeBatch + 1
		}
		retried := q.storedAt[first]
		if limit := max(q.failCall, 1) + 3; retried > limit {
			t.Errorf("%s: intent %d stored by commit %d of %d; want by commit %d", name, first, retried, q.commits, limit)
		}
	}
}
