package threads

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"database/sql"
	"github.com/replydesk/replydesk/mailin"
)

// openTestStore opens a real store in a fresh temp dir.
func openTestStore(t testing.TB, mod func(*Config)) *Store {
	t.Helper()
	cfg := Config{
		DataDir:   t.TempDir(),
		Name:      "Support",
		Addresses: []Address{{Email: "support@example.test", Queue: "support"}, {Email: "billing@example.test", Queue: "admin"}},
	}
	if mod != nil {
		mod(&cfg)
	}
	s, err := Open(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func accept(t testing.TB, s *Store, raw string, rcpts ...string) mailin.Receipt {
	t.Helper()
	if len(rcpts) == 0 {
		rcpts = []string{"support@example.test"}
	}
	rc, err := s.Accept(context.Background(), mailin.Envelope{Path: mailin.PathSMTP, MailFrom: "alice@example.com", Rcpts: rcpts, Live: true}, []byte(raw))
	if err != nil {
		t.Fatalf("accept: %v", err)
	}
	return rc
}

func process(t testing.TB, s *Store) int {
	t.Helper()
	n, err := s.ProcessPending(context.Background())
	if err != nil {
		t.Fatalf("process: %v", err)
	}
	return n
}

func testMail(msgID, subject string, extra ...string) string {
	h := fmt.Sprintf("From: Alice <alice@example.com>\r\nTo: support@example.test\r\nSubject: %s\r\nMessage-ID: <%s>\r\nDate: Mon, 2 Nov 2026 10:00:00 +0000\r\n", subject, msgID)
	for _, e := range extra {
		h += e + "\r\n"
	}
	return h + "\r\nHello, " + subject + "\r\n"
}

func TestAcceptKeepsRawBytesExactly(t *testing.T) {
	t.Parallel()
	s := openTestStore(t, nil)
	raw := "From x\r\nbare\nlf\r\n\x00nul\xff\xfe" + testMail("raw@x", "raw")
	rc := accept(t, s, raw)
	got, err := s.RawMessage(context.Background(), rc.ID)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != raw {
		t.Fatalf("raw bytes changed:\n got %q\nwant %q", got, raw)
	}
}

func TestAcceptSameBytesStoredOnce(t *testing.T) {
	t.Parallel()
	s := openTestStore(t, nil)
	raw := testMail("dup@x", "dup")
	first := accept(t, s, raw)
	second := accept(t, s, raw)
	if first.Duplicate || !second.Duplicate || first.ID != second.ID {
		t.Fatalf("receipts %+v then %+v: want the second to be a duplicate of the first", first, second)
	}
	process(t, s)
	st, err := s.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if st.Accepted != 1 || st.Tickets["open"] != 1 {
		t.Fatalf("accepted %d, open tickets %d: want 1 and 1", st.Accepted, st.Tickets["open"])
	}
}

func TestConcurrentAcceptsShareCommits(t *testing.T) {
	t.Parallel()
	s := openTestStore(t, nil)
	const n = 200
	var wg sync.WaitGroup
	ids := make([]int64, n)
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rc, err := s.Accept(context.Background(), mailin.Envelope{Path: mailin.PathSMTP}, []byte(testMail(fmt.Sprintf("c%d@x", i), "c")))
			ids[i], errs[i] = rc.ID, err
		}()
	}
	wg.Wait()
	seen := map[int64]bool{}
	for i := range n {
		if errs[i] != nil || ids[i] == 0 || seen[ids[i]] {
			t.Fatalf("accept %d: id %d err %v", i, ids[i], errs[i])
		}
		seen[ids[i]] = true
	}
	commits, ops := s.WriterStats()
	t.Logf("%d accepts in %d commits", ops, commits)
	if ops < n || commits > ops {
		t.Fatalf("writer stats: %d commits, %d ops", commits, ops)
	}
}

// Senders' commits are fsynced (synchronous=FULL); background commits are not (NORMAL),
// and a sender's commit after one is fsynced again.
func TestOnlySendersCommitsAreFsynced(t *testing.T) {
	t.Parallel()
	s := openTestStore(t, nil)
	syncOf := func(background bool) int {
		var mode int
		op := func(tx *sql.Tx) error { return tx.QueryRow("PRAGMA synchronous").Scan(&mode) }
		var err error
		if background {
			err = s.writeBackground(context.Background(), op)
		} else {
			err = s.write(context.Background(), op)
		}
		if err != nil {
			t.Fatal(err)
		}
		return mode
	}
	const normal, full = 1, 2
	for i, c := range []struct {
		background bool
		want       int
	}{{false, full}, {true, normal}, {true, normal}, {false, full}, {true, normal}, {false, full}} {
		if got := syncOf(c.background); got != c.want {
			t.Errorf("commit %d (background %v): synchronous = %d, want %d", i, c.background, got, c.want)
		}
	}
}

// TestAcceptFailsWhenStoreIsFull: at the size cap SQLite fails the write exactly as on a
// full disk; Accept must report it (so the sender hears 451), and store nothing.
func TestAcceptFailsWhenStoreIsFull(t *testing.T) {
	t.Parallel()
	s := openTestStore(t, func(c *Config) { c.MaxDBBytes = 200 << 10 })
	big := testMail("big@x", "big") + strings.Repeat("x", 64<<10) + "\r\n"
	var err error
	stored := 0
	for i := 0; i < 20 && err == nil; i++ {
		_, err = s.Accept(context.Background(), mailin.Envelope{Path: mailin.PathSMTP}, []byte(strings.Replace(big, "big@x", fmt.Sprintf("big%d@x", i), 1)))
		if err == nil {
			stored++
		}
	}
	if err == nil {
		t.Fatal("20 messages of 64 KiB fit in a 200 KiB store")
	}
	if !strings.Contains(err.Error(), "full") {
		t.Fatalf("error %q does not say the database is full", err)
	}
	st, serr := s.Status(context.Background())
	if serr != nil {
		t.Fatal(serr)
	}
	if st.Accepted != int64(stored) {
		t.Fatalf("%d accepted rows, %d acknowledged", st.Accepted, stored)
	}
}

func TestRefuseNewerSchema(t *testing.T) {
	t.Parallel()
	s := openTestStore(t, nil)
	dir := filepath.Dir(s.Path())
	if _, err := s.wdb.Exec(fmt.Sprintf("PRAGMA user_version = %d", schemaVersion+1)); err != nil {
		t.Fatal(err)
	}
	s.Close()
	_, err := Open(Config{DataDir: dir}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err == nil || !strings.Contains(err.Error(), "newer") {
		t.Fatalf("open of a newer schema: %v, want a refusal", err)
	}
}

func TestReplyJoinsTicketAndLateParentToo(t *testing.T) {
	t.Parallel()
	s := openTestStore(t, nil)
	accept(t, s, testMail("a@x", "first"))
	accept(t, s, testMail("b@x", "Re: first", "In-Reply-To: <a@x>", "References: <a@x>"))
	// c@x is answered by d@x before c@x itself arrives (out-of-order delivery).
	accept(t, s, testMail("d@x", "Re: other", "In-Reply-To: <c@x>"))
	accept(t, s, testMail("c@x", "other"))
	// Two strangers replying to a newsletter we never saw are not joined.
	accept(t, s, testMail("e@x", "Re: news", "In-Reply-To: <newsletter@list>"))
	accept(t, s, testMail("f@x", "Re: news", "In-Reply-To: <newsletter@list>"))
	if n := process(t, s); n != 6 {
		t.Fatalf("processed %d, want 6", n)
	}
	list, err := s.Tickets(context.Background(), TicketFilter{})
	if err != nil {
		t.Fatal(err)
	}
	var counts []int
	for _, tk := range list {
		counts = append(counts, tk.MessageCount)
	}
	if fmt.Sprint(counts) != "[2 2 1 1]" {
		t.Fatalf("messages per ticket %v, want [2 2 1 1]", counts)
	}
	tk, err := s.Ticket(context.Background(), 1)
	if err != nil {
		t.Fatal(err)
	}
	if tk.Messages[1].MatchedBy != "headers" || tk.Messages[0].MatchedBy != "new" || tk.Messages[1].Text != "Hello, Re: first\n" {
		t.Fatalf("ticket 1 messages: %+v", tk.Messages)
	}
}

func TestProcessingIsResumableAndIdempotent(t *testing.T) {
	t.Parallel()
	s := openTestStore(t, nil)
	for i := range 10 {
		accept(t, s, testMail(fmt.Sprintf("r%d@x", i), "r"))
	}
	if n := process(t, s); n != 10 {
		t.Fatalf("processed %d, want 10", n)
	}
	if n := process(t, s); n != 0 {
		t.Fatalf("second pass processed %d, want 0", n)
	}
	// Filing the same row again inside a transaction is a no-op (another process won).
	err := s.write(context.Background(), func(tx *sql.Tx) error {
		_, err := s.file(tx, &pending{id: 1, parsed: Parse([]byte(testMail("r0@x", "r")), DefaultParseLimits()), received: time.Now()})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	list, _ := s.Tickets(context.Background(), TicketFilter{})
	if len(list) != 10 {
		t.Fatalf("%d tickets, want 10", len(list))
	}
}

func TestMalformedMessageIsFiledAndFlagged(t *testing.T) {
	t.Parallel()
	s := openTestStore(t, nil)
	accept(t, s, "this is not a header\r\nFrom: bob@example.com\r\n\r\nbody text\r\n")
	accept(t, s, testMail("ok@x", "fine"))
	process(t, s)
	st, err := s.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if st.MalformedCount != 1 || len(st.Malformed) != 1 || st.Unfiled != 0 {
		t.Fatalf("status: %+v", st)
	}
	tk, err := s.Ticket(context.Background(), st.Malformed[0].Ticket)
	if err != nil {
		t.Fatal(err)
	}
	m := tk.Messages[0]
	if !strings.Contains(m.Text, "body text") || !contains(m.Flags, "malformed") || len(m.Notes) == 0 {
		t.Fatalf("malformed message shown as %+v", m)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// TestReaderNeverWrites: a reader opens no writer, works beside a writing store, and
// refuses writes; a data dir with no database is created instead.
func TestReaderNeverWrites(t *testing.T) {
	t.Parallel()
	s := openTestStore(t, nil)
	accept(t, s, testMail("reader@x", "hello"))
	process(t, s)
	r, err := OpenReader(s.cfg, s.log)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if list, err := r.Tickets(context.Background(), TicketFilter{}); err != nil || len(list) != 1 {
		t.Fatalf("reader sees %v, %v", list, err)
	}
	if err := r.SetTicket(context.Background(), 1, map[string]string{"status": "resolved"}, "t"); err == nil {
		t.Fatal("a reader wrote")
	}
	fresh, err := OpenReader(Config{DataDir: t.TempDir()}, s.log)
	if err != nil {
		t.Fatalf("reader on a fresh data dir: %v", err)
	}
	fresh.Close()
}
