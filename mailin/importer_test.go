package mailin

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A reply whose sender's clock is hours behind sorts before its parent by Date; the
// import must still bring the parent first, and references that form a cycle (forged or
// broken) must not hang or drop anything.
func TestScanImportPutsParentsFirst(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(name, id, date, extra string) {
		raw := fmt.Sprintf("From: x@example.com\nMessage-ID: <%s>\nDate: %s\n%s\nbody\n", id, date, extra)
		if err := os.WriteFile(filepath.Join(dir, name), []byte(raw), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("1", "parent@x", "Mon, 2 Nov 2026 12:00:00 +0000", "")
	write("2", "reply@x", "Mon, 2 Nov 2026 09:00:00 +0000", "In-Reply-To: <PARENT@x>\n") // clock 3 h slow
	write("3", "reply2@x", "Mon, 2 Nov 2026 08:00:00 +0000", "References: <parent@x>\n\t<reply@x>\n")
	write("4", "other@x", "Mon, 2 Nov 2026 10:00:00 +0000", "")
	write("5", "cycle-a@x", "Mon, 2 Nov 2026 07:00:00 +0000", "In-Reply-To: <cycle-b@x>\n")
	write("6", "cycle-b@x", "Mon, 2 Nov 2026 07:30:00 +0000", "In-Reply-To: <cycle-a@x>\n")
	items, skipped, err := ScanImport([]string{dir}, 1<<20)
	if err != nil || len(skipped) != 0 {
		t.Fatalf("scan: %v %v", err, skipped)
	}
	var order []string
	for _, it := range items {
		order = append(order, strings.TrimSuffix(it.id, "@x"))
	}
	got := strings.Join(order, " ")
	if want := "cycle-b cycle-a parent reply reply2 other"; got != want { // a parent moves up to its earliest reply
		t.Fatalf("import order %q, want %q", got, want)
	}
}
