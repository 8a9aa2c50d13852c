package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/replydesk/replydesk/threads"
)

// runCmd runs the CLI in-process and returns its exit status and outputs.
func runCmd(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := run(context.Background(), args, strings.NewReader(stdin), &out, &errOut)
	return code, out.String(), errOut.String()
}

// writeConfig writes a config with its own data dir and returns the file's path.
func writeConfig(t *testing.T, extra string) string {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "replydesk.toml")
	body := fmt.Sprintf("[helpdesk]\ndata_dir = %q\n\n[[address]]\nemail = \"support@example.test\"\nqueue = \"support\"\n\n[[address]]\nemail = \"billing@example.test\"\nqueue = \"admin\"\n%s", filepath.Join(dir, "data"), extra)
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestExampleConfigIsValid(t *testing.T) {
	t.Parallel()
	code, out, errOut := runCmd(t, "", "check-config", "-config", "../../config.example.toml")
	if code != 0 {
		t.Fatalf("check-config config.example.toml: exit %d\n%s%s", code, out, errOut)
	}
}

func TestCheckConfigReportsEveryMistakeWithItsLine(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "bad.toml")
	os.WriteFile(path, []byte(`[helpdesk]
default_language = "fr"
reopen_days = -1

[[address]]
email = "not an address"
queue = "support"

[smtp]
listen = "nowhere"
read_timeout = "0s"

[sla]
billing = "12h"
weather = "1h"
`), 0o600)
	code, _, errOut := runCmd(t, "", "check-config", "-config", path)
	if code != exitConfig {
		t.Fatalf("exit %d, want %d", code, exitConfig)
	}
	for _, want := range []string{
		"bad.toml:2: helpdesk.default_language", "bad.toml:3: helpdesk.reopen_days",
		"bad.toml:6: address[0].email", "bad.toml:10: smtp.listen", "bad.toml:11: smtp.read_timeout",
		"bad.toml:15: sla.weather",
	} {
		if !strings.Contains(errOut, want) {
			t.Errorf("missing %q in:\n%s", want, errOut)
		}
	}
}

func TestUnknownKeysAndSyntaxErrorsHaveLines(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	unknown := filepath.Join(dir, "unknown.toml")
	os.WriteFile(unknown, []byte("[smtp]\nlisten = \"127.0.0.1:2525\"\nlisen = \"x\"\n\n[helpdesk]\nnmae = \"x\"\n"), 0o600)
	_, _, errOut := runCmd(t, "", "check-config", unknown)
	if !strings.Contains(errOut, "unknown.toml:3:1: unknown key smtp.lisen") || !strings.Contains(errOut, "unknown.toml:6:1: unknown key helpdesk.nmae") {
		t.Fatalf("unknown keys not both reported with lines:\n%s", errOut)
	}
	syntax := filepath.Join(dir, "syntax.toml")
	os.WriteFile(syntax, []byte("[smtp]\nlisten = 127.0.0.1\n"), 0o600)
	code, _, errOut := runCmd(t, "", "check-config", syntax)
	if code != exitConfig || !strings.Contains(errOut, "syntax.toml:2:") {
		t.Fatalf("exit %d, syntax error without its line:\n%s", code, errOut)
	}
}

func TestHelpForEveryCommand(t *testing.T) {
	t.Parallel()
	code, out, _ := runCmd(t, "", "help")
	if code != 0 {
		t.Fatalf("help: exit %d", code)
	}
	for name := range commands {
		if !strings.Contains(out, "  "+name) {
			t.Errorf("usage does not list %s", name)
		}
		code, _, errOut := runCmd(t, "", name, "-h")
		if code != 0 || !strings.Contains(errOut, "usage: replydesk "+name) {
			t.Errorf("%s -h: exit %d\n%s", name, code, errOut)
		}
	}
	if code, _, _ := runCmd(t, "", "frobnicate"); code != 2 {
		t.Errorf("unknown command: exit %d, want 2", code)
	}
}

const customerMail = "From: Alice <alice@example.com>\r\nTo: support@example.test\r\nSubject: Printer on fire\r\nMessage-ID: <first@example.com>\r\nDate: Mon, 2 Nov 2026 10:00:00 +0000\r\n\r\nMy printer is on fire.\r\n"

func TestIngestPipeExitStatus(t *testing.T) {
	t.Parallel()
	cfg := writeConfig(t, "[smtp]\nmax_message_bytes = 2048\n")
	if code, _, errOut := runCmd(t, customerMail, "ingest", "-config", cfg); code != 0 {
		t.Fatalf("ingest: exit %d\n%s", code, errOut)
	}
	code, out, _ := runCmd(t, "", "show", "1", "-json", "-config", cfg) // flags after N, as SPEC §7 writes them
	if code != 0 || !strings.Contains(out, "My printer is on fire.") {
		t.Fatalf("show 1 after the pipe: exit %d\n%s", code, out)
	}
	if code, _, _ := runCmd(t, "", "ingest", "-config", cfg); code != exitDataErr {
		t.Errorf("empty input: exit %d, want %d", code, exitDataErr)
	}
	if code, _, _ := runCmd(t, customerMail+strings.Repeat("x", 4096), "ingest", "-config", cfg); code != exitDataErr {
		t.Errorf("oversize input: exit %d, want %d", code, exitDataErr)
	}
	// A data dir that cannot be created is a temporary failure: the MTA keeps the mail.
	blocked := writeConfig(t, "")
	os.WriteFile(filepath.Join(filepath.Dir(blocked), "data"), []byte("a file, not a dir"), 0o600)
	if code, _, _ := runCmd(t, customerMail, "ingest", "-config", blocked); code != exitTempFail {
		t.Errorf("store unavailable: exit %d, want %d", code, exitTempFail)
	}
}

func TestIngestImportsInDateOrder(t *testing.T) {
	t.Parallel()
	cfg := writeConfig(t, "")
	src := t.TempDir()
	msg := func(id, date, extra string) string {
		return fmt.Sprintf("From: bob@example.com\nTo: support@example.test\nSubject: s %s\nMessage-ID: <%s>\nDate: %s\n%s\nbody of %s\n", id, id, date, extra, id)
	}
	// The reply's file sorts first, but its Date is later: import files by Date.
	os.WriteFile(filepath.Join(src, "a-reply.eml"), []byte(msg("reply@x", "Tue, 3 Nov 2026 10:00:00 +0000", "In-Reply-To: <parent@x>\n")), 0o600)
	os.WriteFile(filepath.Join(src, "b-parent.eml"), []byte(msg("parent@x", "Mon, 2 Nov 2026 10:00:00 +0000", "")), 0o600)
	os.WriteFile(filepath.Join(src, "notes.json"), []byte(`{"not": "mail"}`), 0o600)
	mbox := "From bob Mon Nov  2 10:00:00 2026\n" + msg("m1@x", "Mon, 2 Nov 2026 11:00:00 +0000", "") +
		"\nFrom bob Mon Nov  2 12:00:00 2026\n" + msg("m2@x", "Mon, 2 Nov 2026 12:00:00 +0000", "In-Reply-To: <m1@x>\n") +
		"\nFrom bob Mon Nov  2 13:00:00 2026\n" + msg("m3@x", "Mon, 2 Nov 2026 13:00:00 +0000", "")
	os.WriteFile(filepath.Join(src, "old.mbox"), []byte(mbox), 0o600)
	maildir := filepath.Join(t.TempDir(), "Maildir")
	for _, sub := range []string{"cur", "new", "tmp"} {
		os.MkdirAll(filepath.Join(maildir, sub), 0o700)
	}
	os.WriteFile(filepath.Join(maildir, "cur", "1.host:2,S"), []byte(msg("md1@x", "Wed, 4 Nov 2026 10:00:00 +0000", "")), 0o600)
	os.WriteFile(filepath.Join(maildir, "new", "2.host"), []byte(msg("md2@x", "Wed, 4 Nov 2026 11:00:00 +0000", "References: <md1@x>\n")), 0o600)
	os.WriteFile(filepath.Join(maildir, "tmp", "3.host"), []byte(msg("partial@x", "Wed, 4 Nov 2026 12:00:00 +0000", "")), 0o600)

	code, out, errOut := runCmd(t, "", "ingest", "-config", cfg, src, maildir)
	if code != 0 {
		t.Fatalf("ingest: exit %d\n%s", code, errOut)
	}
	if !strings.Contains(out, "7 stored, 0 duplicates, 0 malformed, 1 skipped") {
		t.Fatalf("summary: %q", out)
	}
	code, out, _ = runCmd(t, "", "ingest", "-config", cfg, src)
	if code != 0 || !strings.Contains(out, "0 stored, 5 duplicates") {
		t.Fatalf("re-import: exit %d, summary %q", code, out)
	}
	var list []threads.Ticket
	_, out, _ = runCmd(t, "", "tickets", "-config", cfg, "-json")
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		t.Fatal(err)
	}
	var shape []string
	for _, tk := range list {
		shape = append(shape, fmt.Sprintf("%s:%d", strings.TrimPrefix(tk.Subject, "s "), tk.MessageCount))
	}
	if got := strings.Join(shape, " "); got != "parent@x:2 m1@x:2 m3@x:1 md1@x:2" {
		t.Fatalf("tickets %s, want parent@x:2 m1@x:2 m3@x:1 md1@x:2", got)
	}
}

// waitForInbound waits until ticket n holds want messages from outside (the ticket also
// holds the mail we send) and returns the ticket and those messages.
func waitForInbound(t *testing.T, cfg string, n int64, want int) (threads.Ticket, []threads.Message) {
	t.Helper()
	var tk threads.Ticket
	var in []threads.Message
	waitFor(t, fmt.Sprintf("%d inbound messages in ticket %d", want, n), func() bool {
		code, out, _ := runCmd(t, "", "show", "-config", cfg, "-json", fmt.Sprint(n))
		if code != 0 || json.Unmarshal([]byte(out), &tk) != nil {
			return false
		}
		in = in[:0]
		for _, m := range tk.Messages {
			if m.Direction == "in" {
				in = append(in, m)
			}
		}
		return len(in) == want
	})
	return tk, in
}

// freePort finds a port that was free a moment ago (for the subprocess tests).
func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func dialSMTP(addr string) (*smtp.Client, error) {
	conn, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return nil, err
	}
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	return smtp.NewClient(conn), nil
}

func sendMail(addr, from, raw string) error {
	c, err := dialSMTP(addr)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.SendMail(from, []string{"support@example.test"}, strings.NewReader(raw)); err != nil {
		return err
	}
	return c.Quit()
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestServeEndToEnd runs the real serve command in-process: mail in over SMTP, a reply
// joins the ticket, tickets/show print it, and a stop signal drains and exits 0.
func TestServeEndToEnd(t *testing.T) {
	t.Parallel()
	addr := freePort(t)
	cfg := writeConfig(t, fmt.Sprintf("[smtp]\nlisten = %q\n", addr))
	ctx, stop := context.WithCancel(context.Background())
	exited := make(chan int, 1)
	go func() {
		var out, errOut bytes.Buffer
		exited <- run(ctx, []string{"serve", "-config", cfg}, strings.NewReader(""), &out, &errOut)
	}()
	waitFor(t, "the listener", func() bool {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	if err := sendMail(addr, "alice@example.com", customerMail); err != nil {
		t.Fatal(err)
	}
	reply := strings.Replace(strings.Replace(customerMail, "<first@example.com>", "<second@example.com>\r\nIn-Reply-To: <first@example.com>", 1), "My printer is on fire.", "It is out now.", 1)
	if err := sendMail(addr, "alice@example.com", reply); err != nil {
		t.Fatal(err)
	}
	tk, in := waitForInbound(t, cfg, 1, 2)
	if tk.Status != "open" || tk.Queue != "support" || tk.Customer != "alice@example.com" ||
		in[0].Text != "My printer is on fire.\n" || in[1].MatchedBy != "headers" {
		t.Fatalf("ticket 1: %+v", tk)
	}
	_, out, _ := runCmd(t, "", "tickets", "-config", cfg)
	if !strings.Contains(out, "#1") || !strings.Contains(out, "Printer on fire") {
		t.Fatalf("tickets:\n%s", out)
	}
	_, out, _ = runCmd(t, "", "status", "-config", cfg, "-json")
	var st threads.Status
	if err := json.Unmarshal([]byte(out), &st); err != nil || len(st.Intake) != 1 || st.Intake[0].Listen != addr || st.Intake[0].Accepted != 2 {
		t.Fatalf("status: %v\n%s", err, out)
	}
	stop()
	select {
	case code := <-exited:
		if code != 0 {
			t.Fatalf("serve exited %d", code)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("serve did not stop")
	}
}
