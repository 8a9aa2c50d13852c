package mailout

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	"github.com/replydesk/replydesk/threads"
)

// Queue is what delivery needs from the store.
type Queue interface {
	DueMail(ctx context.Context, now time.Time, limit int) ([]threads.OutboxItem, error)
	NextMailDue(ctx context.Context) (time.Time, bool, error)
	MailSent(ctx context.Context, ids ...int64) error
	MailRetry(ctx context.Context, id int64, reason string, next time.Time) error
	MailFailed(ctx context.Context, id int64, reason string) error
}

// RetryPolicy: exponential backoff with jitter from Base, at most Max between attempts;
// after GiveUp since the first attempt... counted as attempts, the mail fails for good.
type RetryPolicy struct {
	Base, Max   time.Duration
	MaxAttempts int
}

// DefaultRetry: 1 min, 2, 4, ... capped at 2 h, giving up after 20 attempts (about 1.5 days).
var DefaultRetry = RetryPolicy{Base: time.Minute, Max: 2 * time.Hour, MaxAttempts: 20}

// Outbox delivers queued mail until its context ends.
type Outbox struct {
	q     Queue
	tr    Transport
	retry RetryPolicy
	log   *slog.Logger
	wake  chan struct{}
	batch int
	alert func(kind, subject, text string) // tells the operator (SetAlert); nil: nobody
	busy  func() bool                      // senders wait for a commit: give way (GiveWay)
	// unmarked is mail sent whose mark failed to commit: it is still queued in the store,
	// so it is marked before anything more is sent, or this run would send it again.
	unmarked []int64
}

// GiveWay makes delivery wait, like composing, while senders wait for their commit:
// marking mail sent shares the writer with them. Call it before Run.
func (o *Outbox) GiveWay(busy func() bool) { o.busy = busy }

// SetAlert installs the operator alert (Alerter.Alert) for mail that fails for good or
// keeps being deferred (alertAfter attempts). Call it before Run.
func (o *Outbox) SetAlert(alert func(kind, subject, text string)) { o.alert = alert }

// alertAfter is the attempt from which a deferred mail counts as "keeps failing".
const alertAfter = 3

func (o *Outbox) tell(it threads.OutboxItem, what string, err error) {
	if o.alert == nil {
		return
	}
	o.alert("outbox", "outbound mail "+what, fmt.Sprintf(
		"Mail %d (%s for ticket #%d, to %s) %s after %d attempts:\n\n  %v\n\n"+
			"`replydesk status` counts queued, retrying and failed mail; `replydesk show %d` shows this one.",
		it.ID, it.Kind, it.Ticket, strings.Join(it.Rcpts, ", "), what, it.Attempts+1, err, it.Ticket))
}

// NewOutbox delivers q's mail through tr.
func NewOutbox(q Queue, tr Transport, retry RetryPolicy, log *slog.Logger) *Outbox {
	if retry.Base == 0 {
		retry = DefaultRetry
	}
	return &Outbox{q: q, tr: tr, retry: retry, log: log, wake: make(chan struct{}, 1), batch: 1024}
}

// Wake tells the worker new mail was queued.
func (o *Outbox) Wake() {
	select {
	case o.wake <- struct{}{}:
	default:
	}
}

// Run delivers until ctx ends. Mail is sent in parallel up to the transport's limit and
// marked sent as soon as the smarthost accepted it; a crash between the smarthost's 250
// and that commit sends the mail again: at least once, never lost.
func (o *Outbox) Run(ctx context.Context) {
	defer o.tr.Close()
	for ctx.Err() == nil {
		n, err := o.deliverDue(ctx)
		if err != nil && ctx.Err() == nil {
			o.log.Error("outbox", "err", err)
		}
		if n > 0 {
			continue
		}
		if errors.Is(err, errUnmarked) { // the store cannot record sent mail: wait a little
			t := time.NewTimer(markRetry)
			select {
			case <-ctx.Done():
			case <-t.C:
			}
			t.Stop()
			continue
		}
		o.sleep(ctx)
	}
}

// errUnmarked: mail sent earlier in this run could not be recorded as sent yet.
var errUnmarked = errors.New("sent mail not recorded as sent yet: nothing more is sent until it is")

// markRetry is how often marking sent mail is tried again while the store refuses it.
const markRetry = time.Second

// idlePoll bounds how long mail queued by another process (`ingest` as the MTA's pipe)
// waits to be noticed.
const idlePoll = 5 * time.Second

// sleep waits for a wake-up, the next due time, or idlePoll.
func (o *Outbox) sleep(ctx context.Context) {
	wait := idlePoll
	if next, ok, err := o.q.NextMailDue(ctx); err == nil && ok {
		wait = min(max(time.Until(next), 10*time.Millisecond), idlePoll)
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-o.wake:
	case <-t.C:
	}
}

// DeliverDue sends what is due now, once (for tests and the benchmark).
func (o *Outbox) DeliverDue(ctx context.Context) (int, error) { return o.deliverDue(ctx) }

func (o *Outbox) deliverDue(ctx context.Context) (int, error) {
	giveWay(ctx, o.busy)
	if len(o.unmarked) > 0 {
		if err := o.q.MailSent(context.WithoutCancel(ctx), o.unmarked...); err != nil {
			return 0, fmt.Errorf("%w: %d mails: %w", errUnmarked, len(o.unmarked), err)
		}
		o.unmarked = nil
	}
	items, err := o.q.DueMail(ctx, time.Now(), o.batch)
	if err != nil || len(items) == 0 {
		return 0, err
	}
	sent := make(chan int64, len(items)) // never blocks a worker
	var unmarked []int64
	marked := make(chan error, 1)
	go func() {
		var err error
		unmarked, err = o.markSent(context.WithoutCancel(ctx), sent)
		marked <- err
	}()
	var wg sync.WaitGroup
	work := make(chan threads.OutboxItem)
	for range min(16, len(items)) { // the transport caps real parallelism
		wg.Add(1)
		go func() {
			defer wg.Done()
			for it := range work {
				if o.deliver(ctx, it) {
					sent <- it.ID
				}
			}
		}()
	}
	for _, it := range items {
		work <- it
	}
	close(work)
	wg.Wait()
	close(sent)
	err = <-marked
	o.unmarked = unmarked
	return len(items), err
}

// markSent records sent mail as it comes, each commit carrying every mail sent while the
// previous one ran: a worker never waits for a commit (while filing keeps the writer
// busy, one commit per mail capped delivery at a few hundred a second), and a crash
// between the smarthost's 250 and the mark sends again at most one commit's worth. It
// returns the mail it could not mark.
func (o *Outbox) markSent(ctx context.Context, sent <-chan int64) (unmarked []int64, firstErr error) {
	for id := range sent {
		ids := []int64{id}
	more:
		for {
			select {
			case id, ok := <-sent:
				if !ok {
					break more
				}
				ids = append(ids, id)
			default:
				break more
			}
		}
		if err := o.q.MailSent(ctx, ids...); err != nil {
			unmarked = append(unmarked, ids...)
			if firstErr == nil {
				firstErr = err
			}
		}
	}
	return unmarked, firstErr
}

// deliver sends one mail and records a failure; it reports success.
func (o *Outbox) deliver(ctx context.Context, it threads.OutboxItem) bool {
	err := o.tr.Send(ctx, it.MailFrom, it.Rcpts, it.Raw)
	log := o.log.With("ticket", it.Ticket, "outbox", it.ID, "kind", it.Kind, "to", it.Rcpts)
	wctx := context.WithoutCancel(ctx)
	switch {
	case err == nil:
		log.Info("mail sent")
		return true
	case Permanent(err) || it.Attempts+1 >= o.retry.MaxAttempts:
		log.Warn("mail failed", "err", err, "attempts", it.Attempts+1)
		if err := o.q.MailFailed(wctx, it.ID, err.Error()); err != nil {
			log.Error("record failed mail", "err", err)
		}
		o.tell(it, "failed for good", err)
	default:
		next := time.Now().Add(o.backoff(it.Attempts))
		log.Info("mail deferred", "err", err, "next", next)
		if err := o.q.MailRetry(wctx, it.ID, err.Error(), next); err != nil {
			log.Error("record deferred mail", "err", err)
		}
		if it.Attempts+1 >= alertAfter {
			o.tell(it, "keeps failing", err)
		}
	}
	return false
}

// backoff doubles from Base up to Max, with ±20% jitter so retries do not march in step.
func (o *Outbox) backoff(attempts int) time.Duration {
	d := o.retry.Base << min(attempts, 20)
	if d > o.retry.Max || d <= 0 {
		d = o.retry.Max
	}
	jitter := 0.8 + 0.4*rand.Float64()
	return time.Duration(float64(d) * jitter)
}
