package threads

import (
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// mergeReferencing makes arrival order not matter: when a message arrives after replies
// to it that opened other tickets, those tickets are merged into the message's ticket,
// exactly as if the message had come first. Automatic mail merges nothing (a newsletter
// arriving late must not join everyone who replied to it).
func (s *Store) mergeReferencing(tx *sql.Tx, f *filing) error {
	p := f.m.parsed
	if p.MessageID == "" || f.auto {
		return nil
	}
	rows, err := tx.Stmt(s.sql.ticketsReferencing).Query(p.MessageID, f.ticket)
	if err != nil {
		return err
	}
	var others []int64
	for rows.Next() {
		var t int64
		if err := rows.Scan(&t); err != nil {
			rows.Close()
			return err
		}
		others = append(others, t)
	}
	rows.Close()
	for _, from := range others {
		if err := s.mergeTicket(tx, from, f.ticket, f.m.received, p.MessageID); err != nil {
			return err
		}
	}
	return nil
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
