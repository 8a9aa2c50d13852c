package mailin_test

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
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

// expectClosed checks that the server has closed the connection (after any reply).
func (c *conn) expectClosed() {
	c.t.Helper()
	c.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if line, err := c.br.ReadString('\n'); err == nil {
		c.t.Fatalf("connection still open, got %q", line)
	}
}

// TestCommandLineLimit: a command line longer than 2048 octets is answered 500 5.5.2 and
// the connection closed, without the server reading (and holding) the rest of it;
// message lines may still be long, and the guard stays in step with DATA and BDAT.
func TestCommandLineLimit(t *testing.T) {
	t.Parallel()
	ts := startServer(t, func(c *mailin.Config) { c.MaxMessageBytes = 1 << 20 }, nil)

	c := dial(t, ts.smtp)
	c.cmd("EHLO client.example", "250")
	c.cmd("NOOP "+strings.Repeat("x", 2048-len("NOOP \r\n")), "250") // exactly at the limit
	c.cmd("MAIL FROM:<"+strings.Repeat("a", 3000)+"@example.com>", "500 5.5.2")
	c.expectClosed()

	// A 3 MB line is cut off after the limit, not buffered.
	c = dial(t, ts.smtp)
	c.cmd("EHLO client.example", "250")
	go c.c.Write([]byte("MAIL FROM:<" + strings.Repeat("a", 3<<20)))
	c.expect("500 5.5.2")
	c.expectClosed()

	// Inside DATA, lines are message lines: a bare LF does not start a line, so the
	// ".\r\n" after it is text and the long line after that is still the message.
	c = dial(t, ts.smtp)
	c.startData("EHLO client.example", "support@example.test")
	fmt.Fprint(c.c, "Subject: long\r\n\r\nbare\n.\r\n"+strings.Repeat("x", 5000)+"\r\n.\r\n")
	c.expect("250")
	c.cmd("NOOP", "250")

	// BDAT chunks are read by their size, whatever bytes they hold.
	c = dial(t, ts.smtp)
	c.cmd("EHLO client.example", "250")
	c.cmd("MAIL FROM:<alice@example.com>", "250")
	c.cmd("RCPT TO:<support@example.test>", "250")
	chunk := "Subject: bdat\r\n\r\n" + strings.Repeat("y", 5000)
	fmt.Fprintf(c.c, "BDAT %d\r\n%s", len(chunk), chunk)
	c.expect("250")
	fmt.Fprint(c.c, "BDAT 2 LAST\r\n\r\n")
	c.expect("250")
	c.cmd("RSET "+strings.Repeat("z", 3000), "500 5.5.2")
	c.expectClosed()
	if n := accepted(t, ts.store); n != 2 {
		t.Fatalf("%d stored, want the DATA and the BDAT message", n)
	}
}

// TestCommandLineLimitAfterSTARTTLS: behind TLS the guard cannot see lines, so it bounds
// what a client sends without a reply (64 KiB); a normal session is unaffected.
func TestCommandLineLimitAfterSTARTTLS(t *testing.T) {
	t.Parallel()
	cert, key := writeCert(t)
	ts := startServer(t, func(c *mailin.Config) { c.TLSCert, c.TLSKey, c.MaxMessageBytes = cert, key, 1<<20 }, nil)
	c := dial(t, ts.smtp)
	c.cmd("EHLO client.example", "250")
	c.cmd("STARTTLS", "220")
	tc := c.startTLS()
	tc.cmd("EHLO client.example", "250")
	tc.sendMail("support@example.test", message("tls@x"), "250")
	// BDAT chunks are not unanswered bytes, however large.
	tc.cmd("MAIL FROM:<alice@example.com>", "250")
	tc.cmd("RCPT TO:<support@example.test>", "250")
	chunk := message("tls-bdat@x") + strings.Repeat(strings.Repeat("b", 78)+"\r\n", 3000)
	fmt.Fprintf(tc.c, "BDAT %d LAST\r\n%s", len(chunk), chunk)
	tc.expect("250")
	go tc.c.Write([]byte("MAIL FROM:<" + strings.Repeat("a", 1<<20)))
	// go-smtp may first answer the part of the line it has buffered; then 500 and close.
	var replies []string
	for {
		line, err := tc.br.ReadString('\n')
		if err != nil {
			break
		}
		replies = append(replies, line)
	}
	if len(replies) == 0 || !strings.HasPrefix(replies[len(replies)-1], "500") || len(replies) > 2 {
		t.Fatalf("a 1 MB line behind TLS got %q, want 500 and the connection closed", replies)
	}
	if n := accepted(t, ts.store); n != 2 {
		t.Fatalf("%d stored, want the two messages sent over TLS", n)
	}
}

func (c *conn) startTLS() *conn {
	tc := tls.Client(c.c, &tls.Config{InsecureSkipVerify: true, ServerName: "desk.example.test"})
	if err := tc.Handshake(); err != nil {
		c.t.Fatal(err)
	}
	return &conn{t: c.t, c: tc, br: bufio.NewReader(tc)}
}

// writeCert writes a self-signed certificate and its key into a temp dir.
func writeCert(t *testing.T) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), DNSNames: []string{"desk.example.test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600)
	return certFile, keyFile
}

// TestJunkCommandLimit: commands that move no mail (NOOP, RSET, VRFY, HELP, unknown or
// refused ones) are counted; beyond the limit the session gets 421 and is closed. A
// delivered message starts the count again.
func TestJunkCommandLimit(t *testing.T) {
	t.Parallel()
	ts := startServer(t, func(c *mailin.Config) { c.JunkCommandLimit = 5 }, nil)
	c := dial(t, ts.smtp)
	c.cmd("EHLO client.example", "250")
	for _, cmd := range []string{"NOOP", "RSET", "VRFY alice", "HELP", "XYZZY"} {
		c.send(cmd)
		if r := c.reply(); strings.HasPrefix(r[0], "421") {
			t.Fatalf("%s answered %q within the limit", cmd, r)
		}
	}
	c.cmd("NOOP", "421 4.7.0")
	c.expectClosed()

	c = dial(t, ts.smtp)
	c.cmd("EHLO client.example", "250")
	for range 3 {
		c.cmd("NOOP", "250")
	}
	c.cmd("MAIL FROM:<alice@example.com>", "250")
	c.cmd("RCPT TO:<nobody@example.test>", "550") // refused: junk
	c.cmd("RCPT TO:<support@example.test>", "250")
	c.cmd("DATA", "354")
	fmt.Fprint(c.c, message("junk@x")+".\r\n")
	c.expect("250")
	for range 5 {
		c.cmd("NOOP", "250")
	}
	c.cmd("NOOP", "421 4.7.0")
	c.expectClosed()
}

// TestStressTimeouts is defect 7: every slot held by a session sending NOOP every
// 200 ms (or by an idle one), the junk limit out of play. Once most slots are busy, a
// session must make progress every stress timeout, so a new client gets in within
// seconds; a message that keeps coming is not cut off.
func TestStressTimeouts(t *testing.T) {
	t.Parallel()
	const slots = 10
	ts := startServer(t, func(c *mailin.Config) {
		c.MaxSessions, c.MaxSessionsPerIP = slots, slots
		c.StressPercent, c.StressTimeout = 80, time.Second
		c.ReadTimeout = time.Minute
	}, nil)

	// A message in transfer, trickling a line every 300 ms for 3 s.
	slow := dial(t, ts.smtp)
	slow.startData("EHLO slow.example", "support@example.test")
	slowDone := make(chan error, 1)
	go func() {
		fmt.Fprint(slow.c, "Subject: slow\r\nMessage-ID: <slow@x>\r\n\r\n")
		for range 10 {
			time.Sleep(300 * time.Millisecond)
			fmt.Fprint(slow.c, "still typing\r\n")
		}
		fmt.Fprint(slow.c, ".\r\n")
		r, err := slow.br.ReadString('\n')
		if err == nil && !strings.HasPrefix(r, "250") {
			err = fmt.Errorf("slow message answered %q", r)
		}
		slowDone <- err
	}()

	stop := make(chan struct{})
	defer close(stop)
	for i := range slots - 1 {
		c := dial(t, ts.smtp)
		c.cmd("EHLO idle.example", "250")
		if i%2 == 1 {
			continue // idle
		}
		go func() {
			for {
				select {
				case <-stop:
					return
				case <-time.After(200 * time.Millisecond):
				}
				c.send("NOOP")
				if _, err := c.br.ReadString('\n'); err != nil {
					return
				}
			}
		}()
	}

	start := time.Now()
	for {
		if time.Since(start) > 5*time.Second {
			t.Fatal("no slot for a new client after 5s")
		}
		nc, err := net.Dial("tcp", ts.smtp)
		if err != nil {
			t.Fatal(err)
		}
		c := &conn{t: t, c: nc, br: bufio.NewReader(nc)}
		nc.SetDeadline(time.Now().Add(10 * time.Second))
		if line, _ := c.br.ReadString('\n'); strings.HasPrefix(line, "220") {
			c.cmd("EHLO new.example", "250")
			c.sendMail("support@example.test", message("new@x"), "250")
			nc.Close()
			break
		}
		nc.Close()
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("a new client got a slot after %s", time.Since(start).Round(time.Millisecond))
	if err := <-slowDone; err != nil {
		t.Fatal(err)
	}
	if n := accepted(t, ts.store); n != 2 {
		t.Fatalf("%d stored, want the slow and the new message", n)
	}
}

// TestInflightBudget: with the budget held by a message in transfer, a message already
// under way is answered 451 4.3.1 after DATA, and a new MAIL 452 4.3.1 (with SIZE=,
// because it does not fit; without, because the largest message would not); once the
// budget is free, mail is accepted again. Room for SIZE= is held from MAIL to the end
// of the transaction.
func TestInflightBudget(t *testing.T) {
	t.Parallel()
	ts := startServer(t, func(c *mailin.Config) {
		c.MaxMessageBytes, c.MaxInflightBytes, c.InflightWait = 400<<10, 1<<20, 200*time.Millisecond
	}, nil)
	line := strings.Repeat("a", 1022) + "\r\n"
	body := message("second@x") + strings.Repeat(line, 200)
	b := dial(t, ts.smtp)
	b.startData("EHLO b.example", "support@example.test") // let in: nothing is held yet
	waitUntil(t, "the second message to take its first chunk", func() bool { return ts.srv.Inflight() == 128<<10 })

	a := dial(t, ts.smtp)
	a.startData("EHLO a.example", "support@example.test")
	fmt.Fprint(a.c, "Subject: big\r\nMessage-ID: <big@x>\r\n\r\n")
	fmt.Fprint(a.c, strings.Repeat(line, 390)) // 390 KiB into 64 KiB chunks, each holding twice its size: 7 of 8 budget units
	waitUntil(t, "the first message to hold the budget", func() bool { return ts.srv.Inflight() == 1<<20 })

	fmt.Fprint(b.c, body+".\r\n")
	b.expect("451 4.3.1")
	b.cmd(fmt.Sprintf("MAIL FROM:<alice@example.com> SIZE=%d", len(body)), "452 4.3.1")
	b.cmd("MAIL FROM:<alice@example.com>", "452 4.3.1")

	fmt.Fprint(a.c, ".\r\n")
	a.expect("250")
	waitUntil(t, "the budget to be free", func() bool { return ts.srv.Inflight() == 0 })
	b.cmd(fmt.Sprintf("MAIL FROM:<alice@example.com> SIZE=%d", len(body)), "250")
	if n := ts.srv.Inflight(); n != int64(len(body)) {
		t.Fatalf("%d bytes held after MAIL SIZE=%d", n, len(body))
	}
	b.cmd("RSET", "250")
	if n := ts.srv.Inflight(); n != 0 {
		t.Fatalf("%d bytes still held after RSET", n)
	}
	b.cmd(fmt.Sprintf("MAIL FROM:<alice@example.com> SIZE=%d", len(body)), "250")
	b.cmd("RCPT TO:<support@example.test>", "250")
	b.cmd("DATA", "354")
	fmt.Fprint(b.c, body+".\r\n")
	b.expect("250")
	b.sendMail("support@example.test", message("third@x"), "250") // and without SIZE=
	if n := accepted(t, ts.store); n != 3 {
		t.Fatalf("%d stored, want 3", n)
	}
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
