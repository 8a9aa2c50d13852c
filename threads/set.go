package threads

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/mail"
	"sort"
	"time"
)

// Statuses a ticket can have (SPEC §4).
var Statuses = []string{"open", "pending", "resolved", "suspended"}

// Priorities a ticket can have.
var Priorities = []string{"low", "normal", "high", "urgent"}

// ErrBadChange is returned by SetTicket for a change it does not understand.
var ErrBadChange = errors.New("bad change")

// SetTicket changes fields of a ticket (status, assignee, category, priority) and records
// each change, who made it and when, in the ticket's history. changes maps field to value.
func (s *Store) SetTicket(ctx context.Context, id int64, changes map[string]string, actor string) error {
	if err := validateChanges(changes); err != nil {
		return err
	}
	now := time.Now()
	return s.write(ctx, func(tx *sql.Tx) error {
		exists, err := s.ticketExists(tx, id)
		if err != nil {
			return err
		}
		if !exists {
			return fmt.Errorf("ticket #%d: %w", id, ErrNoTicket)
		}
		return s.applyChanges(tx, id, changes, actor, now)
	})
}

// applyChanges makes validated changes in the caller's transaction, each recorded in the
// ticket's history with who made it (SetTicket, an agent's #commands).
func (s *Store) applyChanges(tx *sql.Tx, id int64, changes map[string]string, actor string, now time.Time) error {
	fields := make([]string, 0, len(changes))
	for f := range changes {
		fields = append(fields, f)
	}
	sort.Strings(fields)
	for _, f := range fields {
		v := changes[f]
		// The column name comes from validateChanges' fixed list, never from input.
		if _, err := tx.Exec(`UPDATE tickets SET `+f+` = ?, updated = ? WHERE id = ?`, v, now.Unix(), id); err != nil {
			return err
		}
		if f == "status" {
			var resolved any
			if v == "resolved" {
				resolved = now.Unix()
			}
			if _, err := tx.Exec(sqlSetResolvedAt, resolved, id); err != nil {
				return err
			}
		}
		if err := s.addEvent(tx, id, now, actor, "set", f+"="+v); err != nil {
			return err
		}
	}
	return nil
}

func validateChanges(changes map[string]string) error {
	if len(changes) == 0 {
		return fmt.Errorf("%w: nothing to change", ErrBadChange)
	}
	for f, v := range changes {
		var ok bool
		switch f {
		case "status":
			ok = oneOf(v, Statuses)
		case "category":
			ok = validCategory(v)
		case "priority":
			ok = oneOf(v, Priorities)
		case "assignee":
			a, err := mail.ParseAddress(v)
			ok = v == "" || err == nil && a.Address == v
		default:
			return fmt.Errorf("%w: unknown field %q (status, assignee, category, priority)", ErrBadChange, f)
		}
		if !ok {
			return fmt.Errorf("%w: %s=%q is not allowed", ErrBadChange, f, v)
		}
	}
	return nil
}

func oneOf(v string, list []string) bool {
	for _, x := range list {
		if v == x {
			return true
		}
	}
	return false
}
