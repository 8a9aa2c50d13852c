package threads

import (
	"database/sql"
	"errors"
)

// routing is where a message goes and why.
type routing struct {
	ticket    int64  // 0: a new ticket
	matchedBy string // token, headers, subject, new
	flags     []string
}

// route decides the ticket of a message (SPEC §3). This first cut knows the reply
// headers: the same Message-ID stored before, then any In-Reply-To/References id we
// stored (newest first), then stored messages that name this one (it arrived late).
func (s *Store) route(tx *sql.Tx, m *pending) (routing, error) {
	p := m.parsed
	if p.MessageID != "" {
		t, err := s.ticketOfMessageID(tx, p.MessageID)
		if err != nil {
			return routing{}, err
		}
		if t != 0 {
			return routing{ticket: t, matchedBy: "headers", flags: []string{"duplicate"}}, nil
		}
	}
	for _, id := range newestFirst(p) {
		t, err := s.ticketOfMessageID(tx, id)
		if err != nil {
			return routing{}, err
		}
		if t != 0 {
			return routing{ticket: t, matchedBy: "headers"}, nil
		}
	}
	if p.MessageID != "" {
		t, err := s.ticketReferencing(tx, p.MessageID)
		if err != nil {
			return routing{}, err
		}
		if t != 0 {
			return routing{ticket: t, matchedBy: "headers"}, nil
		}
	}
	return routing{matchedBy: "new"}, nil
}

// newestFirst orders the ids a message names from the most recent: In-Reply-To, then
// References from its end.
func newestFirst(p *Parsed) []string {
	seen := map[string]bool{}
	var out []string
	add := func(id string) {
		if !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	for _, id := range p.InReplyTo {
		add(id)
	}
	for i := len(p.References) - 1; i >= 0; i-- {
		add(p.References[i])
	}
	return out
}

func (s *Store) ticketOfMessageID(tx *sql.Tx, id string) (int64, error) {
	var t int64
	err := tx.Stmt(s.sql.ticketOfMessageID).QueryRow(id).Scan(&t)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	return t, err
}

func (s *Store) ticketReferencing(tx *sql.Tx, id string) (int64, error) {
	var t int64
	err := tx.Stmt(s.sql.ticketReferencing).QueryRow(id).Scan(&t)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	return t, err
}
