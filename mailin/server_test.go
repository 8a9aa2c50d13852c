package mailin_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/replydesk/replydesk/mailin"
	"github.com/replydesk/replydesk/threads"
)

type testServer struct {
	smtp, lmtp string
	store      *threads.Store
	srv        *mailin.Server
}

// startServer runs the real listeners on 127.0.0.1:0 over a real store in a temp dir.
func startServer(t *testing.T, mod func(*mailin.Config), storeMod func(*threads.Config)) *testServer {
	t.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	tcfg := threads.Config{DataDir: t.TempDir(), Addresses: []threads.Address{{Email: "support@example.test", Queue: "support"}}}
	if storeMod != nil {
		storeMod(&tcfg)
	}
	store, err := threads.Open(tcfg, log)
	if err != nil {
		t.Fatal(err)
	}
	cfg := mailin.Config{
		Listen: "127.0.0.1:0", LMTP: "127.0.0.1:0", Hostname: "desk.example.test",
		Addresses:       []string{"support@example.test", "billing@example.test"},
		MaxMessageBytes: 64 << 10, MaxRecipients: 5, MaxSessions: 50, MaxSessionsPerIP: 20,
		ReadTimeout: 10 * time.Second, WriteTimeout: 10 * time.Second, ShutdownGrace: 2 * time.Second,
	}
	if mod != nil {
		mod(&cfg)
	}
	srv, err := mailin.NewServer(cfg, store, log)
	if err != nil {
		t.Fatal(err)
	}
	sa, la, err := srv.Start()
	if err != nil {
		t.Fatal(err)
	}
	ts := &testServer{store: store, srv: srv}
	if sa != nil {
		ts.smtp = sa.String()
	}
	if la != nil {
		ts.lmtp = la.String()
	}
	t.Cleanup(func() {
		srv.Shutdown(context.Background())
		store.Close()
	})
	return ts
}

// conn speaks raw protocol lines, so tests see exactly what a client sees.
type conn struct {
	t  *testing.T
	c  net.Conn
	br *bufio.Reader
}

func dial(t *testing.T, addr string) *conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(30 * time.Second))
	cn := &conn{t: t, c: c, br: bufio.NewReader(c)}
	cn.expect("220")
	return cn
}

// reply reads one (possibly multi-line) reply and returns its lines.
func (c *conn) reply() []string {
	c.t.Helper()
	var lines []string
	for {
		line, err := c.br.ReadString('\n')
		if err != nil {
			c.t.Fatalf("read reply: %v (after %q)", err, lines)
		}
		line = strings.TrimRight(line, "\r\n")
		lines = append(lines, line)
		if len(line) < 4 || line[3] != '-' {
			return lines
		}
	}
}

func (c *conn) send(line string) { fmt.Fprintf(c.c, "%s\r\n", line) }

// cmd sends a line and checks that the reply starts with want.
func (c *conn) cmd(line, want string) []string {
	c.t.Helper()
	c.send(line)
	return c.expect(want)
}

func (c *conn) expect(want string) []string {
	c.t.Helper()
	r := c.reply()
	if !strings.HasPrefix(r[len(r)-1], want) {
		c.t.Fatalf("got %q, want %q", r, want)
	}
	return r
}

func message(id string) string {
	return "From: Alice <alice@example.com>\r\nTo: support@example.test\r\nSubject: help\r\nMessage-ID: <" + id + ">\r\n\r\nMy printer is on fire.\r\n"
}

// startData greets, names sender and recipient and sends DATA: the client may now send
// the message.
func (c *conn) startData(greeting, rcpt string) {
	c.t.Helper()
	if greeting != "" {
		c.cmd(greeting, "250")
	}
	c.cmd("MAIL FROM:<alice@example.com>", "250")
	c.cmd("RCPT TO:<"+rcpt+">", "250")
	c.cmd("DATA", "354")
}

func (c *conn) sendMail(rcpt, msg, want string) {
	c.t.Helper()
	c.startData("", rcpt)
	fmt.Fprint(c.c, msg+".\r\n")
	c.expect(want)
}

func accepted(t *testing.T, s *threads.Store) int64 {
	t.Helper()
	st, err := s.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return st.Accepted
}

func TestRecipientRules(t *testing.T) {
	t.Parallel()
	ts := startServer(t, nil, nil)
	c := dial(t, ts.smtp)
	c.cmd("EHLO client.example", "250")
	c.cmd("MAIL FROM:<x@example.com>", "250")
	for rcpt, want := range map[string]string{
		"<support@example.test>":               "250",
		"<Support@EXAMPLE.test>":               "250",
		"<support+billing@example.test>":       "250",
		"<billing@example.test>":               "250",
		"<other@example.test>":                 "550 5.1.1",
		"<support@example.com>":                "550 5.1.1",
		"<victim@evil.example>":                "550 5.1.1",
		"<victim%evil.example@example.test>":   "550 5.1.1",
		"<evil.example!victim@example.test>":   "550 5.1.1",
		"<@example.test:victim@evil.example>":  "550 5.1.1",
		`<"victim@evil.example"@example.test>`: "550 5.1.1",
		"<support+x y@example.test>":           "5",
		"<support+@example.test>":              "550 5.1.1",
		"<support@example.test@evil.example>":  "550 5.1.1",
	} {
		c.cmd("RCPT TO:"+rcpt, want)
	}
}

func TestSMTPDeliveryAndDuplicate(t *testing.T) {
	t.Parallel()
	ts := startServer(t, nil, nil)
	c := dial(t, ts.smtp)
	c.cmd("EHLO client.example", "250")
	c.sendMail("support@example.test", message("one@x"), "250")
	c.sendMail("support@example.test", message("one@x"), "250") // same bytes
	if n := accepted(t, ts.store); n != 1 {
		t.Fatalf("%d stored, want 1", n)
	}
}

func TestSizeAdvertisedAndEnforced(t *testing.T) {
	t.Parallel()
	ts := startServer(t, func(c *mailin.Config) { c.MaxMessageBytes = 4096 }, nil)
	c := dial(t, ts.smtp)
	ehlo := strings.Join(c.cmd("EHLO client.example", "250"), "\n")
	if !strings.Contains(ehlo, "SIZE 4096") {
		t.Fatalf("EHLO does not advertise SIZE 4096:\n%s", ehlo)
	}
	c.cmd("MAIL FROM:<x@example.com> SIZE=5000", "552")
	big := message("big@x") + strings.Repeat("0123456789", 500) + "\r\n"
	c.sendMail("support@example.test", big, "552 5.3.4")
	c.sendMail("support@example.test", message("small@x"), "250")
	if n := accepted(t, ts.store); n != 1 {
		t.Fatalf("%d stored, want 1 (the small one)", n)
	}
}

func TestTooManyRecipients(t *testing.T) {
	t.Parallel()
	ts := startServer(t, func(c *mailin.Config) { c.MaxRecipients = 2 }, nil)
	c := dial(t, ts.smtp)
	c.cmd("EHLO client.example", "250")
	c.cmd("MAIL FROM:<x@example.com>", "250")
	c.cmd("RCPT TO:<support@example.test>", "250")
	c.cmd("RCPT TO:<billing@example.test>", "250")
	c.cmd("RCPT TO:<support+x@example.test>", "452")
}

func TestLMTPAnswersPerRecipient(t *testing.T) {
	t.Parallel()
	ts := startServer(t, nil, nil)
	c := dial(t, ts.lmtp)
	c.cmd("LHLO client.example", "250")
	c.cmd("MAIL FROM:<alice@example.com>", "250")
	c.cmd("RCPT TO:<support@example.test>", "250")
	c.cmd("RCPT TO:<nobody@example.test>", "550 5.1.1")
	c.cmd("RCPT TO:<billing@example.test>", "250")
	c.cmd("DATA", "354")
	fmt.Fprint(c.c, message("lmtp@x")+".\r\n")
	c.expect("250") // support@
	c.expect("250") // billing@: one reply per accepted recipient
	if n := accepted(t, ts.store); n != 1 {
		t.Fatalf("%d stored, want 1 (one message for both recipients)", n)
	}
}

// TestStorageFailureAnswers451: a store that cannot take the message (here: full, as
// a full disk) answers 451 4.3.0 over SMTP and per recipient over LMTP, never 250 or 5xx.
func TestStorageFailureAnswers451(t *testing.T) {
	t.Parallel()
	ts := startServer(t, func(c *mailin.Config) { c.MaxMessageBytes = 1 << 20 },
		func(c *threads.Config) { c.MaxDBBytes = 160 << 10 })
	big := message("full@x") + strings.Repeat(strings.Repeat("x", 76)+"\r\n", 3000)
	c := dial(t, ts.smtp)
	c.cmd("EHLO client.example", "250")
	c.sendMail("support@example.test", big, "451 4.3.0")
	l := dial(t, ts.lmtp)
	l.cmd("LHLO client.example", "250")
	l.cmd("MAIL FROM:<alice@example.com>", "250")
	l.cmd("RCPT TO:<support@example.test>", "250")
	l.cmd("RCPT TO:<billing@example.test>", "250")
	l.cmd("DATA", "354")
	fmt.Fprint(l.c, big+".\r\n")
	l.expect("451 4.3.0")
	l.expect("451 4.3.0")
	if n := accepted(t, ts.store); n != 0 {
		t.Fatalf("%d stored after 451", n)
	}
	// A small message still fits: the server keeps working.
	c.sendMail("support@example.test", message("small@x"), "250")
}

// failingAcceptor returns a plain Go error, as any storage layer might.
type failingAcceptor struct{}

func (failingAcceptor) Accept(context.Context, mailin.Envelope, []byte) (mailin.Receipt, error) {
	return mailin.Receipt{}, fmt.Errorf("open /secret/path/db: disk I/O error")
}

func TestPlainErrorIsTemporaryAndHidden(t *testing.T) {
	t.Parallel()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	srv, err := mailin.NewServer(mailin.Config{Listen: "127.0.0.1:0", Addresses: []string{"support@example.test"},
		ReadTimeout: 5 * time.Second, WriteTimeout: 5 * time.Second}, failingAcceptor{}, log)
	if err != nil {
		t.Fatal(err)
	}
	addr, _, err := srv.Start()
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown(context.Background())
	c := dial(t, addr.String())
	c.startData("EHLO client.example", "support@example.test")
	fmt.Fprint(c.c, message("x@x")+".\r\n")
	r := c.expect("451 4.3.0")
	if strings.Contains(strings.Join(r, ""), "secret") {
		t.Fatalf("reply leaks the error: %q", r)
	}
}

func TestTimeoutDuringDataIsTemporary(t *testing.T) {
	t.Parallel()
	ts := startServer(t, func(c *mailin.Config) { c.ReadTimeout = 500 * time.Millisecond }, nil)
	c := dial(t, ts.smtp)
	c.startData("EHLO client.example", "support@example.test")
	fmt.Fprint(c.c, "Subject: slow\r\n\r\n")
	for range 4 {
		time.Sleep(250 * time.Millisecond)
		fmt.Fprint(c.c, "still typing\r\n")
	}
	r := c.reply()
	if !strings.HasPrefix(r[0], "451") {
		t.Fatalf("timeout in DATA answered %q, want 451", r)
	}
}

func TestSessionCapPerClient(t *testing.T) {
	t.Parallel()
	ts := startServer(t, func(c *mailin.Config) { c.MaxSessionsPerIP = 2 }, nil)
	dial(t, ts.smtp)
	dial(t, ts.smtp)
	c, err := net.Dial("tcp", ts.smtp)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	line, _ := bufio.NewReader(c).ReadString('\n')
	if !strings.HasPrefix(line, "421 4.7.0") {
		t.Fatalf("third session got %q, want 421 4.7.0", line)
	}
}

// TestShutdownDrainsInFlight: a session in the middle of DATA when shutdown starts
// finishes and gets 250; an idle session is closed at once; no new connection is taken.
func TestShutdownDrainsInFlight(t *testing.T) {
	t.Parallel()
	ts := startServer(t, nil, nil)
	idle := dial(t, ts.smtp)
	idle.cmd("EHLO idle.example", "250")
	busy := dial(t, ts.smtp)
	busy.startData("EHLO busy.example", "support@example.test")
	fmt.Fprint(busy.c, "Subject: half\r\nMessage-ID: <half@x>\r\n\r\nfirst half\r\n")
	done := make(chan struct{})
	go func() { ts.srv.Shutdown(context.Background()); close(done) }()
	// The idle session is closed promptly.
	idle.c.SetReadDeadline(time.Now().Add(time.Second))
	if _, err := idle.br.ReadString('\n'); err == nil {
		t.Fatal("idle session still open after shutdown began")
	}
	if c, err := net.DialTimeout("tcp", ts.smtp, time.Second); err == nil {
		c.Close()
		t.Fatal("new connection accepted during shutdown")
	}
	fmt.Fprint(busy.c, "second half\r\n.\r\n")
	busy.expect("250")
	select {
	case <-done: // the session ended with its transaction, well inside the 2s grace
	case <-time.After(time.Second):
		t.Fatal("shutdown still waiting a second after the last session finished")
	}
	if n := accepted(t, ts.store); n != 1 {
		t.Fatalf("%d stored, want the in-flight message", n)
	}
}

// TestShutdownGraceExpires: a client that stalls mid-message past the grace period is
// cut off without a 250, and nothing half-received is stored.
func TestShutdownGraceExpires(t *testing.T) {
	t.Parallel()
	ts := startServer(t, func(c *mailin.Config) { c.ShutdownGrace = 300 * time.Millisecond }, nil)
	c := dial(t, ts.smtp)
	c.startData("EHLO client.example", "support@example.test")
	fmt.Fprint(c.c, "Subject: stalled\r\n\r\npart")
	start := time.Now()
	ts.srv.Shutdown(context.Background())
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("shutdown took %s with a 300ms grace", d)
	}
	c.c.SetReadDeadline(time.Now().Add(2 * time.Second))
	if line, err := c.br.ReadString('\n'); err == nil && strings.HasPrefix(line, "250") {
		t.Fatalf("stalled client got %q", line)
	}
	if n := accepted(t, ts.store); n != 0 {
		t.Fatalf("%d stored from a cut-off session", n)
	}
}

// TestMegabyteHeaderLine: a 1 MB header line (SPEC §9) is accepted and stored, not
// refused by the protocol's line limit.
func TestMegabyteHeaderLine(t *testing.T) {
	t.Parallel()
	ts := startServer(t, func(c *mailin.Config) { c.MaxMessageBytes = 4 << 20 }, nil)
	c := dial(t, ts.smtp)
	c.cmd("EHLO client.example", "250")
	msg := "From: a@example.com\r\nSubject: long\r\nX-Long: " + strings.Repeat("x", 1<<20) + "\r\n\r\nbody\r\n"
	c.sendMail("support@example.test", msg, "250")
	if n := accepted(t, ts.store); n != 1 {
		t.Fatalf("%d stored", n)
	}
}
