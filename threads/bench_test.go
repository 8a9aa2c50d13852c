package threads

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"math/rand"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// BenchmarkFiling files 20,000 accepted messages (half of them replies) into an empty
// store and into one that already holds 1,000,000 tickets: threading cost must not grow
// with the store. Run with
//
//	go test -run XXX -bench Filing -benchtime 1x -count 3 ./threads
//
// and compare the msgs/s of the two (the seeded store is built once per process).
func BenchmarkFiling(b *testing.B) {
	for _, c := range []struct {
		name      string
		size      int
		toOldOnes bool
	}{
		{"tickets=0", 0, false},
		{"tickets=1000000", 1_000_000, false},
		// The worst case, reported apart: half the replies answer old tickets spread evenly
		// over the million, so each one updates a row and index pages no other message in
		// the batch touches (B-tree write locality, not threading lookups).
		{"tickets=1000000/replies-to-old-tickets", 1_000_000, true},
	} {
		b.Run(c.name, func(b *testing.B) {
			var total time.Duration
			for range b.N {
				b.StopTimer()
				s := storeWithTickets(b, c.size)
				acceptBenchMail(b, s, c.size, 20_000, c.toOldOnes)
				b.StartTimer()
				start := time.Now()
				n, err := s.ProcessPending(context.Background())
				total += time.Since(start)
				b.StopTimer()
				if err != nil || n != 20_000 {
					b.Fatalf("filed %d: %v", n, err)
				}
				s.Close()
			}
			b.ReportMetric(float64(20_000*b.N)/total.Seconds(), "msgs/s")
		})
	}
}

var seeded sync.Map // size -> path of a seeded database to copy

// storeWithTickets opens a store holding size tickets (one message each, with a
// Message-ID a benchmark reply can name), copied from a template built once.
func storeWithTickets(b *testing.B, size int) *Store {
	dir := b.TempDir()
	if size > 0 {
		tmpl, ok := seeded.Load(size)
		if !ok {
			tmpl = seedTemplate(b, size)
			seeded.Store(size, tmpl)
		}
		copyFile(b, tmpl.(string), filepath.Join(dir, "replydesk.db"))
	}
	return openTestStore(b, func(c *Config) { c.DataDir = dir })
}

func seedTemplate(b *testing.B, size int) string {
	dir, err := os.MkdirTemp("", "replydesk-bench-")
	if err != nil {
		b.Fatal(err)
	}
	s := openTestStore(b, func(c *Config) { c.DataDir = dir })
	start := time.Now()
	_, err = s.wdb.Exec(`WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?)
		INSERT INTO tickets (id, subject, status, queue, category, customer, created, updated, due)
		SELECT i, 'seeded ' || i, 'open', 'support', 'other', 'c' || i || '@example.com', 1700000000, 1700000000, 1700172800 FROM n`, size)
	if err == nil {
		_, err = s.wdb.Exec(`INSERT INTO messages (ticket_id, direction, kind, message_id, from_addr, date, body, matched_by)
			SELECT id, 'in', 'customer', 'seed-' || id || '@example.com', customer, created, 'hello', 'new' FROM tickets`)
	}
	if err == nil {
		_, err = s.wdb.Exec(`INSERT INTO participants (ticket_id, address, role) SELECT id, customer, 'customer' FROM tickets`)
	}
	if err == nil {
		_, err = s.wdb.Exec(`INSERT INTO refs (message_row, ref) SELECT id, 'seed-parent-' || id || '@example.com' FROM messages`)
	}
	if err != nil {
		b.Fatal(err)
	}
	s.Close()
	b.Logf("seeded %d tickets in %s", size, time.Since(start).Round(time.Second))
	return filepath.Join(dir, "replydesk.db")
}

func copyFile(b *testing.B, from, to string) {
	in, err := os.Open(from)
	if err != nil {
		b.Fatal(err)
	}
	defer in.Close()
	out, err := os.Create(to)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		b.Fatal(err)
	}
	out.Close()
}

// acceptBenchMail stores n messages in one transaction (acceptance is not what this
// measures): half start tickets, half reply to an earlier one of these messages, so the
// work is the same whatever the store holds; with toOldOnes, replies answer seeded
// tickets instead. Customers have random-looking addresses, as real ones do.
func acceptBenchMail(b *testing.B, s *Store, seeded, n int, toOldOnes bool) {
	rng := rand.New(rand.NewSource(1))
	tx, err := s.wdb.Begin()
	if err != nil {
		b.Fatal(err)
	}
	for i := range n {
		hdr := ""
		if i%2 == 1 {
			parent := fmt.Sprintf("bench-%d@example.com", rng.Intn(i))
			if toOldOnes && seeded > 0 {
				parent = fmt.Sprintf("seed-%d@example.com", 1+rng.Intn(seeded))
			}
			hdr = fmt.Sprintf("In-Reply-To: <%s>\r\nReferences: <%s>\r\n", parent, parent)
		}
		from := fmt.Sprintf("%x@example.com", sha256.Sum256([]byte(fmt.Sprint(i%500))))[32:]
		raw := fmt.Sprintf("From: %s\r\nTo: support@example.test\r\nSubject: bench %d\r\nMessage-ID: <bench-%d@example.com>\r\n%sDate: Mon, 2 Nov 2026 10:00:00 +0000\r\n\r\nThe export to CSV fails with error 500 since this morning.\r\n", from, i, i, hdr)
		digest := sha256.Sum256([]byte(raw))
		if _, err := tx.Exec(`INSERT INTO inbox (received, path, mail_from, rcpt_to, digest, raw) VALUES (?, 'smtp', ?, 'support@example.test', ?, ?)`,
			time.Now().Unix(), from, digest[:], []byte(raw)); err != nil {
			b.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		b.Fatal(err)
	}
	// Start the timed part from an empty WAL: copying the setup's writes back is not
	// threading's cost.
	if _, err := s.wdb.Exec("PRAGMA wal_checkpoint(TRUNCATE)"); err != nil {
		b.Fatal(err)
	}
}
