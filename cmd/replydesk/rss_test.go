package main

import (
	"bufio"
	"fmt"
	"os"
	"strings"
	"testing"
)

// peakRSS reads a process's peak resident set size (VmHWM) in bytes, for the memory
// tests that run serve as a subprocess.
func peakRSS(t *testing.T, pid int) int64 {
	t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatalf("peak RSS: %v", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			var kb int64
			if _, err := fmt.Sscanf(strings.TrimSpace(v), "%d kB", &kb); err != nil {
				t.Fatalf("peak RSS: %q: %v", v, err)
			}
			return kb << 10
		}
	}
	t.Fatalf("peak RSS: no VmHWM in /proc/%d/status", pid)
	return 0
}
