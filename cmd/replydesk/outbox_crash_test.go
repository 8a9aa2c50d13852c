package main

import (
	"encoding/json"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/replydesk/replydesk/threads"
)

// TestQueuedMailSurvivesSIGKILL: with the smarthost down, confirmations wait in the
// outbox; serve is killed with SIGKILL; the smarthost comes up; after a restart every
// queued mail is delivered exactly once.
func TestQueuedMailSurvivesSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("subprocess test skipped in -short mode")
	}
	t.Parallel()
	bin := buildBinary(t)
	smarthost := freePort(t) // nothing listens there yet: connections are refused
	addr := freePort(t)
	cfg := writeConfig(t, fmt.Sprintf("[smtp]\nlisten = %q\n\n[outbound]\ntransport = \"smtp\"\nsmarthost = %q\ntls = \"none\"\nretry_base = \"1s\"\nretry_max = \"1s\"\n", addr, smarthost))
	srv := startServe(t, bin, cfg, addr)
	const customers = 5
	for i := range customers {
		from := fmt.Sprintf("customer%d@example.com", i)
		if err := sendMail(addr, from, customerMessage(from, fmt.Sprintf("k%d@example.com", i), "Invoice question",
			"Why was invoice 42 charged twice this month?")); err != nil {
			t.Fatal(err)
		}
	}
	var st threads.Status
	waitFor(t, "every confirmation to fail once and wait", func() bool {
		_, out, _ := runCmd(t, "", "status", "-config", cfg, "-json")
		return json.Unmarshal([]byte(out), &st) == nil && st.Outbox.Retrying == customers
	})
	srv.Process.Signal(syscall.SIGKILL)
	srv.Wait()

	sh := startCapture(t, smarthost)
	srv = startServe(t, bin, cfg, addr)
	defer func() { srv.Process.Signal(syscall.SIGTERM); srv.Wait() }()
	waitFor(t, "every queued confirmation delivered", func() bool { return len(sh.mails()) >= customers })
	time.Sleep(2 * time.Second) // a duplicate would arrive by now (retry_base 1s)
	seen := map[string]int{}
	for _, m := range sh.mails() {
		seen[m.To[0]]++
	}
	for i := range customers {
		if n := seen[fmt.Sprintf("customer%d@example.com", i)]; n != 1 {
			t.Errorf("customer%d got %d confirmations, want exactly 1", i, n)
		}
	}
	_, out, _ := runCmd(t, "", "status", "-config", cfg, "-json")
	json.Unmarshal([]byte(out), &st)
	if st.Outbox.Sent != customers || st.Outbox.Retrying != 0 || st.Outbox.Queued != 0 {
		t.Fatalf("outbox after restart: %+v", st.Outbox)
	}
}
