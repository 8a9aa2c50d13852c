package threads

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
)

// failingResponder fails for every message whose subject contains bad: a stand-in for
// any bug that one message triggers while it is filed.
type failingResponder struct{ bad string }

func (r failingResponder) Decide(f Filed) ([]Intent, error) {
	if strings.Contains(f.Message.Subject, r.bad) {
		return nil, errors.New("injected failure")
	}
	return nil, nil
}

func (failingResponder) Compose(ToCompose) (Composed, error) { return Composed{}, nil }

// One message that cannot be filed is set aside after fileAttempts tries; the messages
// before and after it in the same batch are filed; refile brings it back once the cause
// is gone.
func TestOneBadMessageIsSetAside(t *testing.T) {
	t.Parallel()
	s := openTestStore(t, nil)
	s.SetResponder(failingResponder{bad: "POISON"}, nil)
	for i := range 10 {
		subject := "normal " + string(rune('a'+i))
		if i == 3 {
			subject = "POISON pill"
		}
		accept(t, s, testMail("m"+string(rune('a'+i))+"@x", subject))
	}
	if n := process(t, s); n != 10 {
		t.Fatalf("processed %d, want 10 (9 filed, 1 set aside)", n)
	}
	st, err := s.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if st.Unfiled != 0 || st.SetAsideCount != 1 || len(st.SetAside) != 1 {
		t.Fatalf("unfiled %d, set aside %d (%v); want 0 and 1", st.Unfiled, st.SetAsideCount, st.SetAside)
	}
	aside := st.SetAside[0]
	if aside.InboxID != 4 || aside.Attempts != fileAttempts || !strings.Contains(aside.Reason, "injected failure") {
		t.Fatalf("set aside %+v; want message 4 after %d attempts with the injected reason", aside, fileAttempts)
	}
	if got := countTickets(t, s); got != 9 {
		t.Fatalf("%d tickets, want 9", got)
	}
	m, err := s.InboxMessage(context.Background(), 4)
	if err != nil {
		t.Fatal(err)
	}
	if m.State != "set_aside" || !strings.Contains(m.Header, "Subject: POISON pill") || m.Reason == "" {
		t.Fatalf("inbox message 4: %+v", m)
	}

	// Still set aside on the next run (nothing retried forever), until refiled.
	if n := process(t, s); n != 0 {
		t.Fatalf("a second run processed %d, want 0", n)
	}
	s.SetResponder(nil, nil) // the cause is fixed
	if n, err := s.Refile(context.Background(), 0); err != nil || n != 1 {
		t.Fatalf("refile: %d, %v", n, err)
	}
	if n := process(t, s); n != 1 {
		t.Fatalf("after refile processed %d, want 1", n)
	}
	if m, _ := s.InboxMessage(context.Background(), 4); m.State != "filed" || m.Ticket == 0 {
		t.Fatalf("after refile: %+v", m)
	}
}

// A storage failure (here: the store closing under the processor) sets nothing aside.
func TestStorageTroubleSetsNothingAside(t *testing.T) {
	t.Parallel()
	if !storageTrouble(ErrClosed) || !storageTrouble(context.Canceled) || storageTrouble(errors.New("bad message")) {
		t.Fatal("storageTrouble misclassifies")
	}
	s := openTestStore(t, nil)
	for i := range 40 {
		accept(t, s, testMail("full"+string(rune('a'+i))+"@x", "subject "+strings.Repeat("x", 1000)))
	}
	// The database is now full: filing needs pages it cannot have (SQLITE_FULL).
	var pages int64
	if err := s.wdb.QueryRow("PRAGMA page_count").Scan(&pages); err != nil {
		t.Fatal(err)
	}
	if _, err := s.wdb.Exec(fmt.Sprintf("PRAGMA max_page_count = %d", pages)); err != nil {
		t.Fatal(err)
	}
	_, err := s.ProcessPending(context.Background())
	if !storageTrouble(err) {
		t.Fatalf("filing into a full database: %v, want a storage error", err)
	}
	st, serr := s.Status(context.Background())
	if serr != nil {
		t.Fatal(serr)
	}
	if st.Unfiled != 40 {
		t.Fatalf("%d unfiled, want all 40 still waiting", st.Unfiled)
	}
	if st.SetAsideCount != 0 {
		t.Fatalf("a full database set %d messages aside: %v", st.SetAsideCount, st.SetAside)
	}
}

func countTickets(t *testing.T, s *Store) int {
	t.Helper()
	list, err := s.Tickets(context.Background(), TicketFilter{})
	if err != nil {
		t.Fatal(err)
	}
	return len(list)
}
