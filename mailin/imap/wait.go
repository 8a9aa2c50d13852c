package imap

import (
	"context"
	"errors"
	"fmt"
	"time"
)

var errLost = errors.New("connection lost")

// wait returns when there may be new mail: the server said so (IDLE), the poll interval
// or IdleRefresh passed, or ctx ended. errRenew: the access token is about to expire.
func (m *mailbox) wait(ctx context.Context) error {
	var renew <-chan time.Time
	if !m.p.renewAt.IsZero() {
		t := time.NewTimer(time.Until(m.p.renewAt))
		defer t.Stop()
		renew = t.C
	}
	if !m.idle {
		t := time.NewTimer(m.p.cfg.PollInterval)
		defer t.Stop()
		select {
		case <-ctx.Done():
		case <-m.p.kick:
		case <-t.C:
		case <-m.c.Closed():
			return errLost
		case <-renew:
			return errRenew
		}
		return nil
	}
	idle, err := m.c.Idle()
	if err != nil {
		return fmt.Errorf("IDLE: %w", err)
	}
	refresh := m.p.cfg.IdleRefresh
	if m.hold != 0 {
		refresh = min(refresh, m.p.cfg.PollInterval) // a message failed to fetch: try it again soon
	}
	t := time.NewTimer(refresh)
	defer t.Stop()
	var why error
	select {
	case <-ctx.Done():
	case <-m.p.kick:
	case <-t.C:
	case <-m.c.Closed():
		why = errLost
	case <-renew:
		why = errRenew
	}
	if why == errLost {
		return why
	}
	if err := idle.Close(); err != nil {
		return fmt.Errorf("end IDLE: %w", err)
	}
	if err := idle.Wait(); err != nil {
		return fmt.Errorf("IDLE: %w", err)
	}
	return why
}
