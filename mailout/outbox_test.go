package mailout

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/replydesk/replydesk/threads"
)

// markFailingQueue is an outbox whose marks fail while failMarks > 0.
type markFailingQueue struct {
	mu        sync.Mutex
	queued    map[int64]bool
	failMarks int
}

func (q *markFailingQueue) DueMail(_ context.Context, _ time.Time, limit int) ([]threads.OutboxItem, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	var out []threads.OutboxItem
	for id := int64(1); id <= 10 && len(out) < limit; id++ {
		if q.queued[id] {
			out = append(out, threads.OutboxItem{ID: id, Ticket: id, Kind: "confirmation", Rcpts: []string{"c@example.com"}, Raw: []byte{byte(id)}})
		}
	}
	return out, nil
}

func (q *markFailingQueue) NextMailDue(context.Context) (time.Time, bool, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return time.Now(), len(q.queued) > 0, nil
}

func (q *markFailingQueue) MailSent(_ context.Context, ids ...int64) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.failMarks > 0 {
		q.failMarks--
		return errors.New("disk I/O error")
	}
	for _, id := range ids {
		delete(q.queued, id)
	}
	return nil
}

func (q *markFailingQueue) MailRetry(context.Context, int64, string, time.Time) error { return nil }
func (q *markFailingQueue) MailFailed(context.Context, int64, string) error           { return nil }

type countingTransport struct {
	mu   sync.Mutex
	sent map[byte]int
}

func (c *countingTransport) Send(_ context.Context, _ string, _ []string, raw []byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sent[raw[0]]++
	return nil
}
func (c *countingTransport) Close() error { return nil }

// When the store cannot record that mail was sent, the mail is not sent again in the same
// run: delivery waits until the marks are stored (a crash meanwhile still resends it).
func TestMailNotSentAgainWhenItsMarkFails(t *testing.T) {
	t.Parallel()
	for _, fails := range []int{1, 5} {
		q := &markFailingQueue{queued: map[int64]bool{}, failMarks: fails}
		for id := int64(1); id <= 3; id++ {
			q.queued[id] = true
		}
		tr := &countingTransport{sent: map[byte]int{}}
		o := NewOutbox(q, tr, DefaultRetry, slog.New(slog.NewTextHandler(io.Discard, nil)))
		for range fails + 2 {
			o.DeliverDue(context.Background())
		}
		for id := byte(1); id <= 3; id++ {
			if n := tr.sent[id]; n != 1 {
				t.Errorf("marks failing %d times: mail %d sent %d times, want once", fails, id, n)
			}
		}
		if len(q.queued) != 0 {
			t.Errorf("marks failing %d times: %d mails still queued after the store recovered", fails, len(q.queued))
		}
	}
}
