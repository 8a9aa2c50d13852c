package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/replydesk/replydesk/mailin/imap/imaptest"
	"github.com/replydesk/replydesk/threads"
)

// imapTOML is an [[imap]] table for a loopback test server.
func imapTOML(addr, extra string) string {
	return fmt.Sprintf(`
[[imap]]
server = %q
tls = "none"
address = "support@example.test"
username = %q
password = %q
processed_mailbox = "Processed"
%s`, addr, imaptest.User, imaptest.Password, extra)
}

func TestCheckConfigIMAP(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	loose := filepath.Join(dir, "refresh-token")
	os.WriteFile(loose, []byte("rt"), 0o644)
	path := filepath.Join(dir, "bad.toml")
	os.WriteFile(path, []byte(fmt.Sprintf(`[[address]]
email = "support@example.test"
queue = "support"

[[imap]]
server = "imap.example.com"
address = "nobody@example.test"
username = ""
password = "x"
password_file = "/nonexistent"

[[imap]]
server = "imap.example.com:143"
tls = "none"
address = "support@example.test"
username = "support@example.test"
auth = "xoauth2"
token_url = "http://oauth.example.com/token"
refresh_token_file = %q
mailbox = "INBOX"
processed_mailbox = "inbox"
sent_mailbox = "INBOX"
poll_interval = "10ms"
`, loose)), 0o600)
	code, _, errOut := runCmd(t, "", "check-config", "-config", path)
	if code != exitConfig {
		t.Fatalf("exit %d, want %d\n%s", code, exitConfig, errOut)
	}
	for _, want := range []string{
		"bad.toml:6: imap[0].server", "bad.toml:7: imap[0].address", "bad.toml:8: imap[0].username", "bad.toml:9: imap[0].password",
		"bad.toml:14: imap[1].tls", "bad.toml:18: imap[1].token_url", "imap[1].client_id", "bad.toml:19: imap[1].refresh_token_file: is readable by others",
		"bad.toml:21: imap[1].processed_mailbox", "bad.toml:22: imap[1].sent_mailbox", "bad.toml:23: imap[1].poll_interval",
	} {
		if !strings.Contains(errOut, want) {
			t.Errorf("missing %q in:\n%s", want, errOut)
		}
	}
}

// statusJSON is `status -json` with the IMAP part.
type statusJSON struct {
	threads.Status
	IMAP []threads.MailboxStatus `json:"imap"`
}

func readStatus(t *testing.T, cfg string) statusJSON {
	t.Helper()
	code, out, errOut := runCmd(t, "", "status", "-config", cfg, "-json")
	var st statusJSON
	if code != 0 || json.Unmarshal([]byte(out), &st) != nil {
		t.Fatalf("status: exit %d\n%s%s", code, out, errOut)
	}
	return st
}

func (st statusJSON) mailbox() threads.MailboxStatus {
	if len(st.IMAP) == 0 {
		return threads.MailboxStatus{}
	}
	return st.IMAP[0]
}

// TestServeTakesMailFromIMAP: serve with an [[imap]] table takes in what the mailbox
// held silently (no confirmation for old mail), answers mail that arrives afterwards,
// moves everything to the processed mailbox, and status shows the mailbox. A second
// table, for another mailbox standing for billing@, runs at the same time and files its
// mail into that address's queue.
func TestServeTakesMailFromIMAP(t *testing.T) {
	t.Parallel()
	mem := imaptest.StartMem(t, imaptest.MemOptions{})
	owner := imaptest.Dial(t, mem.Addr)
	owner.Create("Billing")
	owner.Append("INBOX", customerMessage("old1@example.com", "old1@example.com", "An old question", "Asked before replydesk came."))
	owner.Append("INBOX", customerMessage("old2@example.com", "old2@example.com", "Another old one", "Also old."))
	smarthost := startCapture(t, "")
	billing := strings.NewReplacer(`address = "support@example.test"`, `address = "billing@example.test"`,
		`processed_mailbox = "Processed"`, "mailbox = \"Billing\"\nprocessed_mailbox = \"Billing/Done\"").Replace(imapTOML(mem.Addr, ""))
	_, cfg := serveWithSmarthost(t, smarthost.addr, imapTOML(mem.Addr, "")+billing)
	waitFor(t, "the old mail filed", func() bool { st := readStatus(t, cfg); return st.Accepted == 2 && st.Unfiled == 0 })
	owner.Append("INBOX", customerMessage("new@example.com", "new@example.com", "Printer on fire", "It is on fire right now, please help."))
	waitFor(t, "the confirmation of the new mail", func() bool { return len(smarthost.to("new@example.com")) == 1 })
	for _, old := range []string{"old1@example.com", "old2@example.com"} {
		if got := smarthost.to(old); len(got) != 0 {
			t.Errorf("%d mails to %s: the first sync must be silent", len(got), old)
		}
	}
	waitFor(t, "an empty INBOX", func() bool { return len(owner.Messages("INBOX")) == 0 })
	if got := len(owner.Messages("Processed")); got != 3 {
		t.Errorf("Processed holds %d, want 3", got)
	}
	owner.Append("Billing", customerMessage("payer@example.com", "payer@example.com", "Invoice 42 is wrong", "The total on invoice 42 is wrong."))
	waitFor(t, "the billing mail's confirmation", func() bool { return len(smarthost.to("payer@example.com")) == 1 })
	_, out, _ := runCmd(t, "", "tickets", "-config", cfg, "-json")
	var list []threads.Ticket
	json.Unmarshal([]byte(out), &list)
	queues := map[string]string{}
	for _, tk := range list {
		queues[tk.Customer] = tk.Queue
	}
	if queues["payer@example.com"] != "admin" || queues["new@example.com"] != "support" {
		t.Errorf("queues by customer: %v; want billing@'s mailbox in admin, support@'s in support", queues)
	}
	var m threads.MailboxStatus
	waitFor(t, "the mailbox in status", func() bool {
		st := readStatus(t, cfg)
		for _, mb := range st.IMAP {
			if strings.HasSuffix(mb.Mailbox, "/INBOX") {
				m = mb
			}
		}
		return len(st.IMAP) == 2 && m.Connected && m.Mode == "idle" && m.LastUID == 3 && m.Stored == 3
	})
	_, out, _ = runCmd(t, "", "status", "-config", cfg)
	for _, want := range []string{"imap mailboxes:", m.Mailbox, "connected, IDLE", "checkpoint: UIDVALIDITY", "every UID up to 3 stored", "3 taken in"} {
		if !strings.Contains(out, want) {
			t.Errorf("status lacks %q:\n%s", want, out)
		}
	}
}

// TestIMAPRefreshTokenFile: with auth = "xoauth2", every rotated refresh token is
// written back to refresh_token_file (0600, no temp files left), mail keeps flowing
// across token lifetimes, and a revoked token shows in status at once.
func TestIMAPRefreshTokenFile(t *testing.T) {
	t.Parallel()
	ts := imaptest.StartTokenServer(t, 6*time.Second)
	mem := imaptest.StartMem(t, imaptest.MemOptions{XOAUTH2: ts.Check})
	dir := t.TempDir()
	rtFile := filepath.Join(dir, "refresh-token")
	os.WriteFile(rtFile, []byte("rt-0\n"), 0o600)
	smarthost := startCapture(t, "")
	table := strings.Replace(imapTOML(mem.Addr, fmt.Sprintf(`auth = "xoauth2"
token_url = %q
client_id = "cid"
client_secret = "csecret"
refresh_token_file = %q
`, ts.URL, rtFile)), fmt.Sprintf("password = %q\n", imaptest.Password), "", 1)
	_, cfg := serveWithSmarthost(t, smarthost.addr, table)
	appendMail := func(from string) {
		mem.Deliver(t, "INBOX", customerMessage(from, from, "Question from "+from, "Please help me with my account."))
	}
	appendMail("o1@example.com")
	waitFor(t, "the first message", func() bool { return readStatus(t, cfg).Accepted == 1 })
	time.Sleep(7 * time.Second) // the first access token has expired
	appendMail("o2@example.com")
	waitFor(t, "the second message", func() bool { return readStatus(t, cfg).Accepted == 2 })
	current, requests := ts.Current()
	b, _ := os.ReadFile(rtFile)
	fi, _ := os.Stat(rtFile)
	if strings.TrimSpace(string(b)) != current || requests < 2 || fi.Mode().Perm() != 0o600 {
		t.Errorf("refresh token file holds %q (mode %v), the endpoint accepts %q after %d requests", b, fi.Mode().Perm(), current, requests)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("temp files left beside the refresh token: %v", entries)
	}
	if cuts := mem.ExpiredCuts(); cuts != 0 {
		t.Errorf("%d sessions outlived their access token", cuts)
	}
	ts.Revoke()
	waitFor(t, "the revoked token in status", func() bool {
		m := readStatus(t, cfg).mailbox()
		return !m.Connected && strings.Contains(m.LastError, "invalid_grant")
	})
}
