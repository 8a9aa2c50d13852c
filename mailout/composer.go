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
	ComposeDue(ctx context.Context, after int64, limit int) ([]threads.ToCompose, error)
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

// Run composes until ctx ends. The commit of one round overlaps the composing of the
// next (the store's single writer is the slow part of a round): at most one commit is
// in flight, and the next round starts after the last intent handed to it.
func (c *Composer) Run(ctx context.Context) {
	var inFlight <-chan error // the previous round's commit
	after := int64(0)         // intents up to this id are composed or in inFlight
	// settle waits for the commit in flight; false when it failed (its intents wait).
	settle := func() bool {
		if inFlight == nil {
			return true
		}
		err := <-inFlight
		inFlight = nil
		if err != nil && ctx.Err() == nil {
			c.log.Error("storing composed mail", "err", err)
		}
		return err == nil
	}
	defer settle()
	for ctx.Err() == nil {
		giveWay(ctx, c.busy)
		store, last, left, err := c.round(ctx, after)
		stored := true
		if last != 0 {
			stored = settle() // at most one commit in flight
			after = last
			if len(store) > 0 {
				inFlight = c.commitAsync(ctx, store)
			}
			if stored && !left && err == nil {
				continue // more may wait above after
			}
		}
		// Caught up, or intents were left below after (a commit failed, a message could
		// not be read): once the commit in flight is stored, look again from the oldest.
		stored = settle() && stored
		if err != nil && ctx.Err() == nil {
			c.log.Error("composing mail", "err", err)
		}
		restart := after != 0
		after = 0
		if err != nil || !stored || (last == 0 && !restart) {
			c.idle(ctx) // storage trouble, or nothing waiting at all
		}
	}
}

func (c *Composer) idle(ctx context.Context) {
	t := time.NewTimer(idlePoll)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-c.wake:
	case <-t.C:
	}
}

// commitAsync stores a round's mail and tells the outbox, without making the next round
// wait for the commit.
func (c *Composer) commitAsync(ctx context.Context, store []threads.Composed) <-chan error {
	done := make(chan error, 1)
	go func() {
		err := c.q.Composed(context.WithoutCancel(ctx), store)
		if err == nil && c.composed != nil {
			c.composed()
		}
		done <- err
	}()
	return done
}

// ComposeDue composes one batch of waiting intents and stores the result; it returns
// how many it handled.
func (c *Composer) ComposeDue(ctx context.Context) (int, error) {
	giveWay(ctx, c.busy)
	store, _, _, err := c.round(ctx, 0)
	if err != nil || len(store) == 0 {
		return 0, err
	}
	if err := c.q.Composed(context.WithoutCancel(ctx), store); err != nil {
		return 0, err
	}
	if c.composed != nil {
		c.composed()
	}
	return len(store), nil
}

// round composes up to composeBatch intents above after, in parallel, and returns the
// mail to store and the id of the last intent it started (0: none waiting). Intents it
// could not read now stay waiting (left).
func (c *Composer) round(ctx context.Context, after int64) (store []threads.Composed, last int64, left bool, err error) {
	due, err := c.q.ComposeDue(ctx, after, composeBatch)
	if err != nil || len(due) == 0 {
		return nil, 0, false, err
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
	for i := range started {
		if done[i] {
			store = append(store, out[i])
		}
	}
	last = due[started-1].OutboxID
	if len(store) == 0 {
		return nil, last, true, fmt.Errorf("could not read the messages %d mails are about: they wait for the next round", started)
	}
	return store, last, len(store) < started, nil
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
