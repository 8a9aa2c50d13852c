package threads

import (
	"database/sql"
	"errors"
	"fmt"
	"strings"
)

// fileBounce handles a delivery status notification about mail we sent: the report is
// kept on that message's ticket instead of opening a new one, and, when it reports a
// failure (not a delay), the outbound message is marked failed and its recipients
// bouncing (no auto-replies to them until a human writes from the address). It reports
// false for reports about mail we never sent.
func (s *Store) fileBounce(tx *sql.Tx, f *filing) (bool, error) {
	p := f.m.parsed
	for _, id := range bounceRefs(p) {
		var row, ticket int64
		var to string
		err := tx.Stmt(s.sql.outboundByMessageID).QueryRow(id).Scan(&row, &ticket, &to)
		if errors.Is(err, sql.ErrNoRows) {
			continue
		}
		if err != nil {
			return false, err
		}
		if !deliveryFailed(p) {
			// A delay warning (or a success report): kept with the mail it is about,
			// which stays queued/sent, and nobody is marked bouncing.
			f.kind, f.ticket, f.event = "system", ticket, "delivery_report"
			f.routing = routing{ticket: ticket, matchedBy: "headers"}
			what := strings.Join(p.DeliveryActions, ", ")
			if what == "" {
				what = "a delay warning"
			}
			f.notes = append(f.notes, fmt.Sprintf("delivery report for %s (not a failure: %s)", id, what))
			if _, err := tx.Stmt(s.sql.touchTicket).Exec(f.m.received.Unix(), ticket); err != nil {
				return false, err
			}
			return true, s.storeFiled(tx, f)
		}
		failed := bouncedRecipients(p)
		if len(failed) == 0 {
			failed = jsonStrings(to)
		}
		reason := "bounced: " + p.Subject
		if _, err := tx.Stmt(s.sql.markOutboundFailed).Exec(reason, row); err != nil {
			return false, err
		}
		if err := s.tellAgentUndeliverable(tx, row, reason); err != nil {
			return false, err
		}
		for _, a := range failed {
			if _, err := tx.Stmt(s.sql.addBouncing).Exec(strings.ToLower(a), f.m.received.Unix(), reason); err != nil {
				return false, err
			}
		}
		f.kind, f.ticket, f.event = "system", ticket, "bounce"
		f.routing = routing{ticket: ticket, matchedBy: "headers"}
		f.notes = append(f.notes, fmt.Sprintf("delivery of %s failed for %s", id, strings.Join(failed, ", ")))
		if _, err := tx.Stmt(s.sql.touchTicket).Exec(f.m.received.Unix(), ticket); err != nil {
			return false, err
		}
		return true, s.storeFiled(tx, f)
	}
	return false, nil
}
