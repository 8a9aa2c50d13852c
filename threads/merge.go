package threads

import (
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
)

// mergesDue makes arrival order not matter: when a message arrives after replies to it
// that opened other tickets, those tickets are merged into the message's ticket, exactly
// as if the message had come first. It runs before the message is stored (its conflict
// notes go with it) and returns the tickets to merge.
//
// A merge moves one conversation's mail into another ticket, so it happens only within
// one conversation: the sender must take part in every ticket involved (or be an agent
// whose token was verified). A stranger's message that reuses an id someone's reply
// names merges nothing. Automatic mail merges only tickets that hold nothing but mail of
// its own mailing list: no customer's private mail is at stake there, and a newsletter
// arriving late must not join everyone who replied to it privately.
func (s *Store) mergesDue(tx *sql.Tx, f *filing) ([]int64, error) {
	p := f.m.parsed
	if p.MessageID == "" || f.auto && listID(p) == "" {
		return nil, nil
	}
	others, err := s.ticketsReferencing(tx, p.MessageID, f.ticket)
	if err != nil || len(others) == 0 {
		return nil, err
	}
	may := func(ticket int64) (bool, error) { return s.mayMerge(tx, f, ticket) }
	if ok, err := may(f.ticket); err != nil || !ok {
		if err == nil && !f.auto {
			f.notes = append(f.notes, fmt.Sprintf("conflict: replies to this message are in %s; not merged, %s does not take part in #%d",
				ticketList(others), orUnknown(p.From), f.ticket))
		}
		return nil, err
	}
	var merge []int64
	for _, t := range others {
		ok, err := may(t)
		if err != nil {
			return nil, err
		}
		if ok {
			merge = append(merge, t)
		} else if !f.auto {
			f.notes = append(f.notes, fmt.Sprintf("conflict: #%d holds a reply to this message, but %s does not take part in it; not merged",
				t, orUnknown(p.From)))
		}
	}
	return merge, nil
}

// mayMerge: may the message being filed bring ticket into its conversation?
func (s *Store) mayMerge(tx *sql.Tx, f *filing, ticket int64) (bool, error) {
	if f.auto {
		var only bool
		err := tx.QueryRow(sqlOnlyListMail, ticket, listID(f.m.parsed)).Scan(&only)
		return only, err
	}
	if ticket == f.ticket && f.event == "opened" || f.kind == "agent" {
		return true, nil // its own new ticket; an agent verified by token
	}
	return s.participates(tx, ticket, f.m.parsed.From)
}

func (s *Store) ticketsReferencing(tx *sql.Tx, msgID string, except int64) ([]int64, error) {
	rows, err := tx.Stmt(s.sql.ticketsReferencing).Query(msgID, except)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []int64
	for rows.Next() {
		var t int64
		if err := rows.Scan(&t); err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, rows.Err()
}

func ticketList(ids []int64) string {
	parts := make([]string, len(ids))
	for i, id := range ids {
		parts[i] = fmt.Sprintf("#%d", id)
	}
	return strings.Join(parts, ", ")
}

// listID is the mailing list a message came through (List-Id, RFC 2919), lower-cased:
// the part in angle brackets when there is one.
func listID(p *Parsed) string {
	v := p.Header.Get("List-Id")
	if i := strings.LastIndexByte(v, '<'); i >= 0 {
		if j := strings.IndexByte(v[i:], '>'); j > 0 {
			v = v[i+1 : i+j]
		}
	}
	return strings.ToLower(OneLine(strings.TrimSpace(v), 200))
}

// mergeTicket moves every message and participant of ticket from into ticket into, and
// records the merge in both histories.
func (s *Store) mergeTicket(tx *sql.Tx, from, into int64, at time.Time, via string) error {
	for _, q := range []string{sqlMergeMessages, sqlMergeParticipants} {
		if _, err := tx.Exec(q, into, from); err != nil {
			return fmt.Errorf("merge #%d into #%d: %w", from, into, err)
		}
	}
	if _, err := tx.Exec(sqlDropParticipants, from); err != nil {
		return err
	}
	if _, err := tx.Exec(sqlMarkMerged, into, at.Unix(), from); err != nil {
		return err
	}
	if _, err := tx.Exec(sqlMergeTimes, from, into); err != nil {
		return err
	}
	s.log.Info("tickets merged", "ticket", into, "merged", from, "via", via)
	return errors.Join(
		s.addEvent(tx, into, at, "replydesk", "merged", fmt.Sprintf("#%d joined: %s links them", from, via)),
		s.addEvent(tx, from, at, "replydesk", "merged", fmt.Sprintf("merged into #%d: %s links them", into, via)))
}
