package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/replydesk/replydesk/threads"
)

// serveInProcess runs the serve command in this process on cfg until the test ends,
// once it listens on addr; stop ends it earlier (idempotent).
func serveInProcess(t *testing.T, cfg, addr string) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	exited := make(chan int, 1)
	go func() {
		var out, errOut bytes.Buffer
		exited <- run(ctx, []string{"serve", "-config", cfg}, strings.NewReader(""), &out, &errOut)
	}()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case <-exited:
			case <-time.After(15 * time.Second):
				t.Error("serve did not stop")
			}
		})
	}
	t.Cleanup(stop)
	waitFor(t, "serve to listen", func() bool { return sendProbe(addr) })
	return stop
}

// Several MTA pipe deliveries on a data dir that does not exist yet: every one must be
// stored (exit 0), none may lose the race to create the schema (exit 75).
func TestConcurrentFirstIngest(t *testing.T) {
	t.Parallel()
	bin := buildBinary(t)
	cfg := writeConfig(t, "")
	const n = 8
	var wg sync.WaitGroup
	errs := make([]string, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cmd := exec.Command(bin, "ingest", "-config", cfg, "-sender", "alice@example.com")
			cmd.Stdin = strings.NewReader(strings.Replace(customerMail, "first@example.com", fmt.Sprintf("race%d@example.com", i), 1))
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			if err := cmd.Run(); err != nil {
				errs[i] = fmt.Sprintf("ingest %d: %v\n%s", i, err, stderr.String())
			}
		}()
	}
	wg.Wait()
	for _, e := range errs {
		if e != "" {
			t.Error(e)
		}
	}
	_, out, _ := runCmd(t, "", "status", "-config", cfg, "-json")
	var st threads.Status
	if err := json.Unmarshal([]byte(out), &st); err != nil || st.Accepted != n {
		t.Fatalf("status after %d concurrent first ingests: %v\n%s", n, err, out)
	}
}

// backup while serve runs and mail arrives: the copy opens, holds the tickets committed
// before it, and restores by copying it into place. An existing file is never overwritten.
func TestBackupWhileServing(t *testing.T) {
	t.Parallel()
	addr := freePort(t)
	cfg := writeConfig(t, fmt.Sprintf("[smtp]\nlisten = %q\n", addr))
	stop := serveInProcess(t, cfg, addr)
	for i := range 5 {
		raw := strings.Replace(customerMail, "first@example.com", fmt.Sprintf("b%d@example.com", i), 1)
		if err := sendMail(addr, "alice@example.com", raw); err != nil {
			t.Fatal(err)
		}
	}
	waitForInbound(t, cfg, 5, 1)
	// Mail keeps arriving during the backup.
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 20 {
			raw := strings.Replace(customerMail, "first@example.com", fmt.Sprintf("during%d@example.com", i), 1)
			sendMail(addr, "alice@example.com", raw)
		}
	}()
	file := filepath.Join(t.TempDir(), "copy.db")
	code, out, errOut := runCmd(t, "", "backup", "-config", cfg, file)
	<-done
	if code != 0 || !strings.Contains(out, "bytes") {
		t.Fatalf("backup: exit %d\n%s%s", code, out, errOut)
	}
	if code, _, errOut := runCmd(t, "", "backup", "-config", cfg, file); code == 0 || !strings.Contains(errOut, "exists") {
		t.Fatalf("backup over an existing file: exit %d %s", code, errOut)
	}
	stop()

	// Restore: the copy becomes the data dir's database.
	restored := writeConfig(t, "")
	dataDir := filepath.Join(filepath.Dir(restored), "data")
	if err := os.MkdirAll(dataDir, 0o750); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dataDir, "replydesk.db"), b, 0o600); err != nil {
		t.Fatal(err)
	}
	var list []threads.Ticket
	code, out, errOut = runCmd(t, "", "tickets", "-config", restored, "-json")
	if code != 0 || json.Unmarshal([]byte(out), &list) != nil || len(list) < 5 {
		t.Fatalf("tickets from the restored copy: exit %d, %d tickets\n%s%s", code, len(list), out, errOut)
	}
	for i, tk := range list[:5] {
		if tk.ID != int64(i+1) || tk.Customer != "alice@example.com" {
			t.Fatalf("restored ticket %d: %+v", i+1, tk)
		}
	}
}

// The three raw-8-bit sender mails of issue 8 (From, Sender, both name and address),
// each followed by 20 normal mails, over SMTP to serve: nothing is left unfiled or set
// aside, and the bad ones are tickets whose show says why no confirmation went out.
func TestRaw8BitSendersDoNotStopFiling(t *testing.T) {
	t.Parallel()
	addr := freePort(t)
	cfg := writeConfig(t, fmt.Sprintf("[smtp]\nlisten = %q\n\n[[agent]]\nemail = \"ana@example.test\"\nqueues = [\"support\"]\n", addr))
	serveInProcess(t, cfg, addr)
	bad := []string{
		"From: M\xfcller <m\xfcller@example.com>\r\n",
		"From: Anna <anna@example.com>\r\nSender: B\xe4ckerei <b\xe4cker@example.com>\r\n",
		"From: J\xf6rg \xd6 <j\xf6rg\xff@ex\xe4mple.com>\r\nSender: s\xfc@example.com\r\n",
	}
	n := 0
	for i, from := range bad {
		raw := fmt.Sprintf("%sTo: support@example.test\r\nSubject: bad sender %d\r\nMessage-ID: <bad%d@example.com>\r\n\r\nMy order never arrived.\r\n", from, i, i)
		if err := sendMail(addr, "bounces@example.com", raw); err != nil {
			t.Fatalf("bad mail %d: %v", i, err)
		}
		n++
		for j := range 20 {
			raw := customerMessage(fmt.Sprintf("c%d-%d@example.com", i, j), fmt.Sprintf("ok%d-%d@example.com", i, j),
				"Invoice question", "Invoice 7 was charged twice.")
			if err := sendMail(addr, fmt.Sprintf("c%d-%d@example.com", i, j), raw); err != nil {
				t.Fatal(err)
			}
			n++
		}
	}
	var st threads.Status
	waitFor(t, "everything filed", func() bool {
		_, out, _ := runCmd(t, "", "status", "-config", cfg, "-json")
		return json.Unmarshal([]byte(out), &st) == nil && st.Accepted == int64(n) && st.Unfiled == 0
	})
	if st.SetAsideCount != 0 || st.Tickets["open"] != n {
		t.Fatalf("status: %d set aside (%v), %v tickets; want 0 and %d open", st.SetAsideCount, st.SetAside, st.Tickets, n)
	}
	for i, ticket := range []int64{1, 22, 43} {
		_, out, _ := runCmd(t, "", "show", "-config", cfg, "-json", fmt.Sprint(ticket))
		var tk threads.Ticket
		if err := json.Unmarshal([]byte(out), &tk); err != nil || tk.Subject != fmt.Sprintf("bad sender %d", i) {
			t.Fatalf("ticket #%d: %v\n%s", ticket, err, out)
		}
		m := tk.Messages[0]
		confirmed := false
		for _, om := range tk.Messages[1:] {
			confirmed = confirmed || om.Direction == "out" && len(om.Flags) > 0 && om.Flags[0] == "confirmation"
		}
		if i == 1 { // only Sender is bad: From is a fine address, and gets its confirmation
			if !confirmed || m.From != "anna@example.com" {
				t.Errorf("ticket #%d: from %q, confirmed %v; want anna@example.com confirmed", ticket, m.From, confirmed)
			}
			continue
		}
		if confirmed || !strings.Contains(strings.Join(m.Notes, "; "), "no confirmation sent") {
			t.Errorf("ticket #%d (%q): confirmed %v, notes %q; want no confirmation and a note why", ticket, m.From, confirmed, m.Notes)
		}
		for _, om := range tk.Messages[1:] {
			if len(om.To) > 0 && strings.ContainsAny(om.To[0], "\xfc\xe4\xf6\xff") {
				t.Errorf("ticket #%d: mail to a raw 8-bit address: %+v", ticket, om)
			}
		}
	}
}

// show -outbox prints a mail exactly as it was handed to the transport.
func TestShowOutboxPrintsMailAsSent(t *testing.T) {
	t.Parallel()
	addr := freePort(t)
	cfg := writeConfig(t, fmt.Sprintf("[smtp]\nlisten = %q\n", addr))
	serveInProcess(t, cfg, addr)
	if err := sendMail(addr, "alice@example.com", customerMail); err != nil {
		t.Fatal(err)
	}
	var sent threads.Message
	waitFor(t, "the confirmation sent", func() bool {
		tk, _ := waitForInbound(t, cfg, 1, 1)
		for _, m := range tk.Messages {
			if m.Direction == "out" && m.Delivery != nil && m.Delivery.Status == "sent" {
				sent = m
				return true
			}
		}
		return false
	})
	files, _ := filepath.Glob(filepath.Join(filepath.Dir(cfg), "data", "outbox", "[^.]*.eml"))
	if len(files) != 1 {
		t.Fatalf("%d files in the dir transport, want 1", len(files))
	}
	delivered, _ := os.ReadFile(files[0])
	// The dir transport writes the envelope as two header lines before the mail.
	_, delivered, _ = bytes.Cut(delivered, []byte(">\r\nX-Replydesk-Envelope-To: <alice@example.com>\r\n"))
	code, out, errOut := runCmd(t, "", "show", "-config", cfg, "-outbox", fmt.Sprint(sent.Delivery.OutboxID))
	if code != 0 || out != string(delivered) || !strings.Contains(out, "Message-Id: <"+sent.MessageID+">") {
		t.Fatalf("show -outbox: exit %d %s\n%s\nwant the delivered file:\n%s", code, errOut, out, delivered)
	}
}

// reply and note from the shell take the path of a mail from the agent: commands run,
// the text is relayed (serve composes and sends it), a note stays internal.
func TestReplyAndNoteFromTheShell(t *testing.T) {
	t.Parallel()
	cfg := writeConfig(t, "[[agent]]\nemail = \"ana@example.test\"\nname = \"Ana\"\nqueues = [\"support\"]\n")
	if code, _, errOut := runCmd(t, customerMail, "ingest", "-config", cfg); code != 0 {
		t.Fatalf("ingest: %s", errOut)
	}
	if code, _, errOut := runCmd(t, "", "reply", "1", "-as", "mallory@evil.example", "-m", "hi", "-config", cfg); code == 0 || !strings.Contains(errOut, "not an [[agent]]") {
		t.Fatalf("reply as a non-agent: exit %d %s", code, errOut)
	}
	code, out, errOut := runCmd(t, "", "reply", "1", "-as", "ana@example.test", "-m", "#priority high\n\nPlease unplug it.", "-config", cfg)
	if code != 0 || !strings.Contains(out, "filed into #1") {
		t.Fatalf("reply: exit %d %s%s", code, out, errOut)
	}
	if code, _, errOut := runCmd(t, "", "note", "1", "-as", "ana@example.test", "-m", "Reseller: check the contract.", "-config", cfg); code != 0 {
		t.Fatalf("note: %s", errOut)
	}
	var tk threads.Ticket
	_, out, _ = runCmd(t, "", "show", "1", "-json", "-config", cfg)
	if err := json.Unmarshal([]byte(out), &tk); err != nil {
		t.Fatal(err)
	}
	kinds := map[string]int{}
	relays := 0
	for _, m := range tk.Messages {
		kinds[m.Direction+"/"+m.Kind]++
		if m.Direction == "out" && len(m.Flags) > 0 && m.Flags[0] == "agent_reply" && m.To[0] == "alice@example.com" {
			relays++
		}
	}
	if tk.Status != "pending" || tk.Priority != "high" || tk.Assignee != "ana@example.test" ||
		kinds["in/agent"] != 1 || kinds["in/note"] != 1 || relays != 1 {
		t.Fatalf("after reply and note: status %s priority %s assignee %q, messages %v, relays %d", tk.Status, tk.Priority, tk.Assignee, kinds, relays)
	}
}
