package main

import (
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/replydesk/replydesk/threads"
)

// A backlog of 200 × 20 MB messages (accepted while serve was down) is filed by serve in
// bounded memory: batches are bounded by bytes and raw mail is read one message at a
// time. Every message is filed.
func TestFilingBacklogMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("4 GB backlog skipped in -short mode")
	}
	t.Parallel()
	const n, size, limit = 200, 20 << 20, 400 << 20
	bin := buildBinary(t)
	addr := freePort(t)
	cfgPath := writeConfig(t, fmt.Sprintf("[smtp]\nlisten = %q\n", addr))
	dataDir := filepath.Join(filepath.Dir(cfgPath), "data") // writeConfig's
	helper := filepath.Join(t.TempDir(), "backlog")
	if out, err := exec.Command("go", "build", "-o", helper, "./testdata/backlog").CombinedOutput(); err != nil {
		t.Fatalf("build the backlog helper: %v\n%s", err, out)
	}
	if out, err := exec.Command(helper, "-data", dataDir, "-n", fmt.Sprint(n), "-size", fmt.Sprint(size)).CombinedOutput(); err != nil {
		t.Fatalf("store the backlog: %v\n%s", err, out)
	}

	serve := startServe(t, bin, cfgPath, addr)
	defer serve.Process.Kill()
	start := time.Now()
	var st threads.Status
	for {
		// A status read can meet the busy writer of a 20 MiB batch; read again.
		_, out, errOut := runCmd(t, "", "status", "-config", cfgPath, "-json")
		if err := json.Unmarshal([]byte(out), &st); err != nil {
			t.Logf("status (will retry): %v %s", err, errOut)
		} else if st.Unfiled == 0 {
			break
		}
		if time.Since(start) > 5*time.Minute {
			t.Fatalf("backlog not filed after 5 minutes: %d left", st.Unfiled)
		}
		time.Sleep(200 * time.Millisecond)
	}
	peak := peakRSS(t, serve.Process.Pid)
	serve.Process.Signal(syscall.SIGTERM)
	serve.Wait()
	t.Logf("filed %d × %d MiB in %s; serve's peak RSS %d MiB", n, size>>20, time.Since(start).Round(time.Millisecond), peak>>20)
	if st.Tickets["open"] != n || st.SetAsideCount != 0 {
		t.Fatalf("after the backlog: %v open tickets, %d set aside; want %d and 0", st.Tickets, st.SetAsideCount, n)
	}
	if peak > limit {
		t.Fatalf("serve's peak RSS %d MiB while filing the backlog, over %d MiB", peak>>20, limit>>20)
	}
}
