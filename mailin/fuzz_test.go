package mailin_test

import (
	"bufio"
	"context"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/replydesk/replydesk/mailin"
	"github.com/replydesk/replydesk/threads"
)

// panicWatch is a slog handler that remembers whether anything logged a panic (go-smtp
// recovers handler panics and logs them through the server's ErrorLog).
type panicWatch struct{ seen *atomic.Value }

func (p panicWatch) Enabled(context.Context, slog.Level) bool { return true }
func (p panicWatch) Handle(_ context.Context, r slog.Record) error {
	if strings.Contains(strings.ToLower(r.Message), "panic") {
		p.seen.Store(r.Message)
	}
	return nil
}
func (p panicWatch) WithAttrs([]slog.Attr) slog.Handler { return p }
func (p panicWatch) WithGroup(string) slog.Handler      { return p }

var replyLine = regexp.MustCompile(`^[2-5][0-9][0-9][ -]`)

// FuzzSMTPSession sends arbitrary client input to the real SMTP listener (over a real
// store) and checks that the server never panics and only ever answers well-formed reply
// lines. Seeds: protocol scripts and corpus messages sent as DATA.
func FuzzSMTPSession(f *testing.F) {
	for _, s := range []string{
		"EHLO x\r\nMAIL FROM:<a@b>\r\nRCPT TO:<support@example.test>\r\nDATA\r\nSubject: x\r\n\r\nhi\r\n.\r\n",
		"HELO x\r\nMAIL FROM:<>\r\nRCPT TO:<support+tag@example.test>\r\nDATA\r\n..\r\n.\r\n",
		"EHLO x\r\nMAIL FROM:<a@b> SIZE=999999999\r\n",
		"EHLO x\r\nMAIL FROM:<a@b>\r\nRCPT TO:<@r:v@evil>\r\nRCPT TO:<\"a@b\"@example.test>\r\nBDAT 5 LAST\r\nhello",
		"EHLO x\r\nSTARTTLS\r\nAUTH PLAIN AGFAYg==\r\nVRFY a\r\nEXPN b\r\nNOOP\r\nRSET\r\n",
		"\x00\xff\r\n\r\n\n\n.\r\n",
		"EHLO x\r\nMAIL FROM:<a@b> SIZE=100\r\nRCPT TO:<support@example.test>\r\nDATA\r\nx\n.\r\n" + strings.Repeat("y", 3000) + "\r\n.\r\nNOOP\r\n",
		"EHLO x\r\nMAIL FROM:<a@b>\r\nRCPT TO:<support@example.test>\r\nBDAT 3000\r\n" + strings.Repeat("z", 3000) + "BDAT 0 LAST\r\nRSET\r\n",
		"EHLO x\r\nNOOP\r\nNOOP\r\nVRFY a\r\nHELP\r\nRSET\r\n" + strings.Repeat("NOOP\r\n", 30),
		"MAIL FROM:<" + strings.Repeat("a", 3000) + ">\r\n",
	} {
		f.Add([]byte(s))
	}
	files, _ := filepath.Glob("../../shared/corpora/mime/stalwart/malformed/*.eml")
	for _, file := range files {
		if b, err := os.ReadFile(file); err == nil {
			f.Add(append([]byte("EHLO x\r\nMAIL FROM:<a@b>\r\nRCPT TO:<support@example.test>\r\nDATA\r\n"), append(b, "\r\n.\r\n"...)...))
		}
	}
	var seen atomic.Value
	addr := fuzzServer(f, &seen)
	f.Fuzz(func(t *testing.T, script []byte) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(3 * time.Second))
		go func() {
			c.Write(script)
			c.Write([]byte("\r\n.\r\nQUIT\r\n"))
		}()
		sc := bufio.NewScanner(c)
		sc.Buffer(make([]byte, 0, 4096), 1<<20)
		for sc.Scan() {
			if line := sc.Text(); !replyLine.MatchString(line) {
				t.Fatalf("malformed reply line %q", line)
			}
		}
		if p := seen.Load(); p != nil {
			t.Fatalf("server logged a panic: %v", p)
		}
	})
}

func fuzzServer(f *testing.F, seen *atomic.Value) string {
	log := slog.New(panicWatch{seen})
	store, err := threads.Open(threads.Config{DataDir: f.TempDir()}, log)
	if err != nil {
		f.Fatal(err)
	}
	srv, err := mailin.NewServer(mailin.Config{
		Listen: "127.0.0.1:0", Hostname: "fuzz", Addresses: []string{"support@example.test"},
		MaxMessageBytes: 1 << 20, MaxRecipients: 10, MaxSessions: 100, MaxSessionsPerIP: 100,
		ReadTimeout: 2 * time.Second, WriteTimeout: 2 * time.Second, ShutdownGrace: time.Second,
		MaxInflightBytes: 4 << 20, InflightWait: 100 * time.Millisecond,
		JunkCommandLimit: 20, StressPercent: 80, StressTimeout: time.Second,
	}, store, log)
	if err != nil {
		f.Fatal(err)
	}
	addr, _, err := srv.Start()
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() {
		srv.Shutdown(context.Background())
		store.Close()
	})
	return addr.String()
}
