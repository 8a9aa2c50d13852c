// Command probe is the bare pattern replydesk's acceptance is built on, and nothing else:
// go-smtp sessions hand each message to one writer goroutine, which stores everything
// queued in one SQLite transaction (WAL, synchronous=FULL), commits once, and only then
// lets the sessions answer 250. No parsing, no filing, no outbound mail. bench/realistic.sh
// measures it with the same client as serve: the limit of the machine.
package main

import (
	"database/sql"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"path/filepath"

	"github.com/emersion/go-smtp"
	_ "modernc.org/sqlite"
)

type op struct {
	raw  []byte
	done chan error
}

func main() {
	addr := flag.String("addr", "127.0.0.1:2727", "listen address")
	dir := flag.String("dir", "", "data dir")
	flag.Parse()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(*dir, "probe.db")+
		"?_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_pragma=busy_timeout(10000)&_txlock=immediate")
	if err != nil {
		log.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	if _, err := db.Exec(`CREATE TABLE IF NOT EXISTS inbox (id INTEGER PRIMARY KEY, raw BLOB NOT NULL)`); err != nil {
		log.Fatal(err)
	}
	queue := make(chan op, 512)
	go writer(db, queue)
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	srv := smtp.NewServer(backend{queue})
	srv.Domain = "probe.localhost"
	srv.MaxMessageBytes = 32 << 20
	fmt.Fprintln(os.Stderr, "probe listening on", ln.Addr())
	log.Fatal(srv.Serve(ln))
}

// writer commits whatever is queued in one transaction, then answers each session.
func writer(db *sql.DB, queue chan op) {
	batch := make([]op, 0, 512)
	for first := range queue {
		batch = append(batch[:0], first)
	fill:
		for len(batch) < cap(batch) {
			select {
			case o := <-queue:
				batch = append(batch, o)
			default:
				break fill
			}
		}
		err := commit(db, batch)
		for _, o := range batch {
			o.done <- err
		}
	}
}

func commit(db *sql.DB, batch []op) error {
	tx, err := db.Begin()
	if err != nil {
		return err
	}
	for _, o := range batch {
		if _, err := tx.Exec(`INSERT INTO inbox (raw) VALUES (?)`, o.raw); err != nil {
			tx.Rollback()
			return err
		}
	}
	return tx.Commit()
}

type backend struct{ queue chan op }

func (b backend) NewSession(*smtp.Conn) (smtp.Session, error) { return &session{queue: b.queue}, nil }

type session struct{ queue chan op }

func (s *session) Mail(string, *smtp.MailOptions) error { return nil }
func (s *session) Rcpt(string, *smtp.RcptOptions) error { return nil }
func (s *session) Reset()                               {}
func (s *session) Logout() error                        { return nil }

func (s *session) Data(r io.Reader) error {
	raw, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	o := op{raw: raw, done: make(chan error, 1)}
	s.queue <- o
	return <-o.done
}
