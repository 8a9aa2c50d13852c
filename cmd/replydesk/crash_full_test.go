package main

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/replydesk/replydesk/threads"
)

// TestCrashWithFullConfiguration: three agents, DKIM RSA-2048, distinct customers, the
// smtp transport to a capture server. serve is SIGKILLed mid-load (intents recorded but
// not all composed, mail composed but not all delivered) and restarted. Every
// acknowledged message is filed once, and every one gets its confirmation and its one
// notification (to all three agents). Nothing is composed twice. Delivery over SMTP is
// at least once: a mail whose 250 arrived in the last moment before the kill, before
// its "sent" commit, goes out again after the restart (RFC 5321 §6.1 prefers that to a
// loss); such duplicates are bounded by the deliveries in flight, and are the same mail
// (the same Message-ID), never a second composition.
func TestCrashWithFullConfiguration(t *testing.T) {
	if testing.Short() {
		t.Skip("subprocess crash test skipped in -short mode")
	}
	t.Parallel()
	bin := buildBinary(t)
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(t.TempDir(), "dkim.pem")
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}), 0o600); err != nil {
		t.Fatal(err)
	}
	sh := startCapture(t, "")
	addr := freePort(t)
	cfg := writeConfig(t, fmt.Sprintf(`[smtp]
listen = %q

[outbound]
transport = "smtp"
smarthost = %q
tls = "none"
retry_base = "1s"
dkim_key = %q
dkim_selector = "crash"

[[agent]]
email = "ana@example.test"
queues = ["support"]
[[agent]]
email = "bo@example.test"
queues = ["support"]
[[agent]]
email = "cy@example.test"
queues = ["support"]
`, addr, sh.addr, keyFile))
	srv := startServe(t, bin, cfg, addr)
	load := streamMail(addr, 8, func(s, i int) (from, id, raw string) {
		from, id = fmt.Sprintf("c%d-%d@example.com", s, i), fmt.Sprintf("s%d-m%d@full.test", s, i)
		return from, id, customerMessage(from, id, "Invoice charged twice", "Invoice 7 was charged twice.")
	})
	acked, nAcked := &load.acked, &load.nAcked
	waitFor(t, "mail acknowledged and some of it answered", func() bool { return nAcked.Load() >= 300 && len(sh.mails()) >= 50 })
	srv.Process.Signal(syscall.SIGKILL)
	srv.Wait()
	load.stop()
	delivered := len(sh.mails())

	srv = startServe(t, bin, cfg, addr)
	defer func() {
		srv.Process.Signal(syscall.SIGTERM)
		srv.Wait()
	}()
	var st threads.Status
	waitFor(t, "everything filed, composed and delivered", func() bool {
		_, out, _ := runCmd(t, "", "status", "-config", cfg, "-json")
		return json.Unmarshal([]byte(out), &st) == nil && st.Unfiled == 0 &&
			st.Outbox.Composing == 0 && st.Outbox.Queued == 0 && st.Outbox.Retrying == 0
	})
	confirmations, notifications := map[string]int{}, map[string]int{}
	ids := map[string]map[string]bool{} // parent -> Message-IDs of our mails about it
	for _, m := range sh.mails() {
		if m.Msg == nil || !strings.Contains(m.Msg.Header.Get("DKIM-Signature"), "s=crash") {
			t.Fatalf("mail without our DKIM signature: %s", m.Raw)
		}
		parent := strings.Trim(m.Msg.Header.Get("In-Reply-To"), "<>")
		if ids[parent] == nil {
			ids[parent] = map[string]bool{}
		}
		ids[parent][m.Msg.Header.Get("Message-Id")] = true
		switch m.Msg.Header.Get("Auto-Submitted") {
		case "auto-replied":
			confirmations[parent]++
		case "auto-generated":
			notifications[parent]++
			if len(m.To) != 3 {
				t.Errorf("notification to %v, want the three agents", m.To)
			}
		}
	}
	lost, dupes := 0, 0
	acked.Range(func(k, _ any) bool {
		id := k.(string)
		if confirmations[id] == 0 || notifications[id] == 0 {
			lost++
			t.Errorf("%s: %d confirmations, %d notifications; want both", id, confirmations[id], notifications[id])
		}
		dupes += confirmations[id] + notifications[id] - 2
		if len(ids[id]) > 2 {
			t.Errorf("%s: composed more than once: %v", id, ids[id])
		}
		return true
	})
	t.Logf("%d acknowledged before SIGKILL, %d mails delivered before it; after the restart %d confirmations, %d notifications, %d sent again; outbox %+v",
		nAcked.Load(), delivered, len(confirmations), len(notifications), dupes, st.Outbox)
	const inFlight = 16 // Outbox.deliverDue's workers
	if st.Outbox.Failed != 0 || st.SetAsideCount != 0 || lost > 0 || dupes > inFlight {
		t.Fatalf("%d messages unanswered, %d mails sent twice (at most %d may be); outbox %+v; %d set aside",
			lost, dupes, inFlight, st.Outbox, st.SetAsideCount)
	}
}
