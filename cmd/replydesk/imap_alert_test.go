package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/replydesk/replydesk/mailin/imap/imaptest"
)

// TestIMAPLoginFailureMailsOperator: serve with an [[imap]] mailbox whose password is
// wrong mails [helpdesk] operator through the real Alerter and the dir transport once
// the login keeps failing, naming the mailbox and the server's refusal, and only once in
// the period: not again while the login goes on failing, nor after a restart of serve
// (the claim is durable).
func TestIMAPLoginFailureMailsOperator(t *testing.T) {
	t.Parallel()
	mem := imaptest.StartMem(t, imaptest.MemOptions{})
	proxy := imaptest.StartProxy(t, mem.Addr) // counts the poller's LOGIN commands
	addr := freePort(t)
	table := imapTOML(proxy.Addr, "")
	wrong := strings.Replace(table, fmt.Sprintf("password = %q", imaptest.Password), `password = "not-the-password"`, 1)
	if wrong == table {
		t.Fatal("the [[imap]] table has no password line to replace")
	}
	cfg := writeConfig(t, fmt.Sprintf("[smtp]\nlisten = %q\n%s", addr, wrong))
	b, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	withOperator := strings.Replace(string(b), "[helpdesk]\n", "[helpdesk]\noperator = \"ops@example.test\"\n", 1)
	if withOperator == string(b) {
		t.Fatal("no [helpdesk] table to add the operator to")
	}
	if err := os.WriteFile(cfg, []byte(withOperator), 0o600); err != nil {
		t.Fatal(err)
	}
	outbox := filepath.Join(filepath.Dir(cfg), "data", "outbox") // the dir transport's default
	logins := func() int { return len(proxy.Sent(`^\S+ LOGIN `)) }
	alerts := func() []dirMail {
		var out []dirMail
		for _, m := range dirMails(t, outbox) {
			if m.to == "<ops@example.test>" {
				out = append(out, m)
			}
		}
		return out
	}

	stop := serveInProcess(t, cfg, addr)
	waitFor(t, "the operator alert", func() bool { return len(alerts()) > 0 })
	afterAlert := logins()
	if afterAlert < 3 {
		t.Errorf("alerted after %d refused logins; the poller alerts when the login keeps failing (3 times)", afterAlert)
	}
	waitFor(t, "another refused login", func() bool { return logins() > afterAlert })
	stop()
	key := fmt.Sprintf("imap://%s@%s/INBOX", imaptest.User, proxy.Addr)
	got := alerts()
	if len(got) != 1 {
		t.Fatalf("%d alert mails to the operator after %d refused logins, want 1", len(got), logins())
	}
	m := got[0]
	if subj := m.msg.Header.Get("Subject"); !strings.Contains(subj, "IMAP: login keeps failing") {
		t.Errorf("alert subject %q", subj)
	}
	text := textPart(t, captured{Msg: m.msg})
	for _, want := range []string{key, "LOGIN refused", "AUTHENTICATIONFAILED"} {
		if !strings.Contains(text, want) {
			t.Errorf("the alert does not name %q:\n%s", want, text)
		}
	}
	if m.msg.Header.Get("Auto-Submitted") == "" {
		t.Errorf("the alert lacks Auto-Submitted")
	}

	// A restart starts counting refusals again and reaches the alert again: the durable
	// claim keeps it to one mail per period.
	// (The fourth refusal is attempted after the third was handled.)
	before := logins()
	stop = serveInProcess(t, cfg, addr)
	waitFor(t, "four more refused logins", func() bool { return logins() >= before+4 })
	stop()
	if n := len(alerts()); n != 1 {
		t.Errorf("%d alert mails after a restart of serve in the same hour, want 1", n)
	}
}
