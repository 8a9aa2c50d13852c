package threads

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// Outbound is mail replydesk wrote, recorded on its ticket so that replies to it (by
// headers) and bounces of it (by its Message-ID) find the ticket.
type Outbound struct {
	Ticket    int64
	Kind      string // auto, agent, system
	MessageID string // without angle brackets
	From      string
	To        []string
	Subject   string
	Text      string
	Date      time.Time
}

// RecordOutbound stores an outbound message as queued and returns its row id.
func (s *Store) RecordOutbound(ctx context.Context, o Outbound) (int64, error) {
	if o.Date.IsZero() {
		o.Date = time.Now()
	}
	var id int64
	err := s.write(ctx, func(tx *sql.Tx) error {
		p := &Parsed{MessageID: o.MessageID, From: o.From, To: o.To, Subject: o.Subject, Body: o.Text}
		var err error
		if id, err = s.insertMessage(tx, o.Ticket, 0, "out", o.Kind, p, o.Date, "", nil, nil); err != nil {
			return err
		}
		_, err = tx.Exec(sqlMarkQueued, id)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("record outbound mail for #%d: %w", o.Ticket, err)
	}
	return id, nil
}
