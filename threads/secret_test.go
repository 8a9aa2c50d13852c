package threads

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

// TestLoadOrCreateSecretRace (issue 8, defect 9): serve and ingest starting together on
// a fresh data dir end up with one secret: goroutines, and separate processes.
func TestLoadOrCreateSecretRace(t *testing.T) {
	t.Parallel()
	for round := range 20 {
		dir := filepath.Join(t.TempDir(), "data") // not there yet: created by the first caller
		keys := make([][]byte, 8)
		errs := make([]error, 8)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range keys {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				keys[i], errs[i] = LoadOrCreateSecret(dir)
			}()
		}
		close(start)
		wg.Wait()
		for i := range keys {
			if errs[i] != nil {
				t.Fatalf("round %d, caller %d: %v", round, i, errs[i])
			}
			if !bytes.Equal(keys[i], keys[0]) {
				t.Fatalf("round %d: callers got different secrets %s and %s", round, keys[0], keys[i])
			}
		}
		if got, err := LoadOrCreateSecret(dir); err != nil || !bytes.Equal(got, keys[0]) {
			t.Fatalf("round %d: the secret on disk is %s (%v), the callers use %s", round, got, err, keys[0])
		}
		if left, _ := filepath.Glob(filepath.Join(dir, ".secret-*")); len(left) != 0 {
			t.Fatalf("temporary files left: %v", left)
		}
		if fi, err := os.Stat(filepath.Join(dir, "secret")); err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("secret file: %v %v", fi, err)
		}
	}
}

func TestLoadOrCreateSecretProcesses(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("starts subprocesses")
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	for round := range 5 {
		dir := filepath.Join(t.TempDir(), "data")
		outs := make([]bytes.Buffer, 4)
		cmds := make([]*exec.Cmd, len(outs))
		for i := range cmds {
			cmds[i] = exec.Command(exe, "-test.run=^TestSecretHelperProcess$")
			cmds[i].Env = append(os.Environ(), "REPLYDESK_SECRET_HELPER="+dir)
			cmds[i].Stdout, cmds[i].Stderr = &outs[i], &outs[i]
		}
		for _, c := range cmds {
			if err := c.Start(); err != nil {
				t.Fatal(err)
			}
		}
		for i, c := range cmds {
			if err := c.Wait(); err != nil {
				t.Fatalf("round %d, process %d: %v\n%s", round, i, err, outs[i].String())
			}
		}
		want, err := LoadOrCreateSecret(dir)
		if err != nil {
			t.Fatal(err)
		}
		for i := range outs {
			if !bytes.Contains(outs[i].Bytes(), []byte("secret="+string(want)+"\n")) {
				t.Fatalf("round %d, process %d does not use the secret on disk %s:\n%s", round, i, want, outs[i].String())
			}
		}
	}
}

// TestSecretHelperProcess is one process of TestLoadOrCreateSecretProcesses.
func TestSecretHelperProcess(t *testing.T) {
	dir := os.Getenv("REPLYDESK_SECRET_HELPER")
	if dir == "" {
		t.Skip("helper process")
	}
	key, err := LoadOrCreateSecret(dir)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Printf("secret=%s\n", key)
}
