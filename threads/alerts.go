package threads

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// ClaimAlert records that the operator is being told about kind now, unless they were
// told less than every ago: it reports whether this caller may send. The claim is
// durable and shared by every process on the store, so restarts and concurrent `ingest`
// runs do not multiply alerts.
func (s *Store) ClaimAlert(ctx context.Context, kind string, now time.Time, every time.Duration) (bool, error) {
	var claimed bool
	err := s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.Exec(sqlClaimAlert, kind, now.Unix(), now.Add(-every).Unix())
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		claimed = n == 1
		return err
	})
	if err != nil {
		return false, fmt.Errorf("claim alert %s: %w", kind, err)
	}
	return claimed, nil
}

// OnSetAside installs a function called (on the filing goroutine: keep it short) each
// time a message is set aside.
func (s *Store) OnSetAside(fn func(inbox int64, reason string)) { s.onSetAside = fn }
