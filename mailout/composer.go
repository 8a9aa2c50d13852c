package mailout

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/replydesk/replydesk/threads"
)

// ComposeQueue is what composing needs from the store.
type ComposeQueue interface {
	ComposeDue(ctx context.Context, limit int) ([]threads.ToCompose, error)
	Composed(ctx context.Context, mails []threads.Composed) error
	// RawMessage is a received message's bytes (inbox row), for the attachments that go
	// along with a relayed reply or a notification.
	RawMessage(ctx context.Context, inboxID int64) ([]byte, error)
}

// Composer renders, composes and signs the mail that filing decided to send, outside
// the filing transaction and on several cores, then hands it to the outbox. Intents are
// durable from the filing commit, so a crash before Composed commits composes them again
// (same Message-ID, same content): composed at least once, delivered exactly once.
type Composer struct {
	q          ComposeQueue
	r          *Responder
	workers    int
	log        *slog.Logger
	wake       chan struct{}
	composed   func()      // after each stored batch (the outbox's Wake)
	busy       func() bool // mail is arriving: give way (nil: never)
	roundBytes int64       // composeBatchBytes (tests lower it)
}

// composeBatch is how many intents one round composes and stores in one commit.
const composeBatch = 128

// composeBatchBytes bounds the composed mail one round holds until its commit: mail
// with attachments can be tens of MiB each. Once the round's finished mail reaches it,
// no more is started (those being composed, at most workers+1, still finish); the rest
// waits for the next round.
const composeBatchBytes = 64 << 20

// While sessions wait for their commit the composer waits (giveWayStep at a time, at
// most giveWayMax per batch): they come first on a small machine, and the composer
// catches up in the gaps.
const (
	giveWayStep = 5 * time.Millisecond
	giveWayMax  = 200 * time.Millisecond
)

// NewComposer composes q's intents with r on workers goroutines (0: one per core).
func NewComposer(q ComposeQueue, r *Responder, workers int, log *slog.Logger) *Composer {
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	return &Composer{q: q, r: r, workers: workers, log: log, wake: make(chan struct{}, 1), roundBytes: composeBatchBytes}
}

// OnComposed sets what runs after composed mail is stored; GiveWay, when mail is
// arriving. Call both before Run.
func (c *Composer) OnComposed(fn func())     { c.composed = fn }
func (c *Composer) GiveWay(busy func() bool) { c.busy = busy }

// Wake tells the composer that filing recorded new intents.
func (c *Composer) Wake() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// Run composes until ctx ends.
func (c *Composer) Run(ctx context.Context) {
	for ctx.Err() == nil {
		n, err := c.ComposeDue(ctx)
		if err != nil && ctx.Err() == nil {
			c.log.Error("composing mail", "err", err)
		}
		if n > 0 && err == nil {
			continue
		}
		t := time.NewTimer(idlePoll)
		select {
		case <-ctx.Done():
		case <-c.wake:
		case <-t.C:
		}
		t.Stop()
	}
}

// ComposeDue composes one batch of waiting intents and stores the result; it returns
// how many it handled.
func (c *Composer) ComposeDue(ctx context.Context) (int, error) {
	giveWay(ctx, c.busy)
	due, err := c.q.ComposeDue(ctx, composeBatch)
	if err != nil || len(due) == 0 {
		return 0, err
	}
	out := make([]threads.Composed, len(due))
	done := make([]bool, len(due))
	var held atomic.Int64 // bytes of composed mail this round
	var wg sync.WaitGroup
	next := make(chan int)
	for range min(c.workers, len(due)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				out[i], done[i] = c.compose(ctx, due[i])
				held.Add(int64(len(out[i].Raw)))
			}
		}()
	}
	started := 0
	for i := range due {
		if held.Load() >= c.roundBytes {
			break
		}
		next <- i
		started++
	}
	close(next)
	wg.Wait()
	var store []threads.Composed
	for i := range started {
		if done[i] {
			store = append(store, out[i])
		}
	}
	if len(store) == 0 {
		return 0, fmt.Errorf("could not read the messages %d mails are about: they wait for the next round", started)
	}
	if err := c.q.Composed(context.WithoutCancel(ctx), store); err != nil {
		return 0, err
	}
	if c.composed != nil {
		c.composed()
	}
	return len(store), nil
}

// compose composes one intent; ok false means it could not be read now (the store
// failed reading the message it is about) and stays waiting for the next round. The
// raw message is read here, on the worker, so that a worker holds at most one.
func (c *Composer) compose(ctx context.Context, in threads.ToCompose) (threads.Composed, bool) {
	if in.InboxID != 0 && in.Attachments && CarriesAttachments(in.Kind) {
		raw, err := c.q.RawMessage(ctx, in.InboxID)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			c.log.Warn("received message gone: mail composed without its attachments", "ticket", in.Ticket, "outbox", in.OutboxID, "kind", in.Kind, "inbox", in.InboxID)
		case err != nil:
			if ctx.Err() == nil {
				c.log.Error("reading the message a mail is about", "ticket", in.Ticket, "outbox", in.OutboxID, "kind", in.Kind, "err", err)
			}
			return threads.Composed{}, false
		default:
			in.Raw = raw
		}
	}
	return c.composeOne(in), true
}

func (c *Composer) composeOne(in threads.ToCompose) (composed threads.Composed) {
	defer func() {
		// A panic composing one mail must not crash serve (again at every restart, on the
		// same intent): that mail fails visibly instead.
		if r := recover(); r != nil {
			err := fmt.Errorf("panic while composing: %v", r)
			c.log.Error("mail not composed", "ticket", in.Ticket, "outbox", in.OutboxID, "kind", in.Kind, "err", err)
			composed = threads.Composed{OutboxID: in.OutboxID, Err: err}
		}
	}()
	m, err := c.r.Compose(in)
	if err != nil {
		// Not retried: the same intent and templates fail the same way. The mail fails
		// visibly (show, status) and the log says why.
		c.log.Error("mail not composed", "ticket", in.Ticket, "outbox", in.OutboxID, "kind", in.Kind, "err", err)
		return threads.Composed{OutboxID: in.OutboxID, Err: err}
	}
	return m
}

// giveWay waits while busy() (at most giveWayMax): background work yields to senders.
func giveWay(ctx context.Context, busy func() bool) {
	for waited := time.Duration(0); busy != nil && busy() && waited < giveWayMax; waited += giveWayStep {
		select {
		case <-ctx.Done():
			return
		case <-time.After(giveWayStep):
		}
	}
}
