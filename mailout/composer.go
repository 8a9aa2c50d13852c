package mailout

import (
	"context"
	"log/slog"
	"runtime"
	"sync"
	"time"

	"github.com/replydesk/replydesk/threads"
)

// ComposeQueue is what composing needs from the store.
type ComposeQueue interface {
	ComposeDue(ctx context.Context, limit int) ([]threads.ToCompose, error)
	Composed(ctx context.Context, mails []threads.Composed) error
}

// Composer renders, composes and signs the mail that filing decided to send, outside
// the filing transaction and on several cores, then hands it to the outbox. Intents are
// durable from the filing commit, so a crash before Composed commits composes them again
// (same Message-ID, same content): composed at least once, delivered exactly once.
type Composer struct {
	q        ComposeQueue
	r        *Responder
	workers  int
	log      *slog.Logger
	wake     chan struct{}
	composed func()      // after each stored batch (the outbox's Wake)
	busy     func() bool // mail is arriving: give way (nil: never)
}

// composeBatch is how many intents one round composes and stores in one commit.
const composeBatch = 128

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
	return &Composer{q: q, r: r, workers: workers, log: log, wake: make(chan struct{}, 1)}
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
	var wg sync.WaitGroup
	next := make(chan int)
	for range min(c.workers, len(due)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				out[i] = c.compose(due[i])
			}
		}()
	}
	for i := range due {
		next <- i
	}
	close(next)
	wg.Wait()
	if err := c.q.Composed(context.WithoutCancel(ctx), out); err != nil {
		return 0, err
	}
	if c.composed != nil {
		c.composed()
	}
	return len(due), nil
}

func (c *Composer) compose(in threads.ToCompose) threads.Composed {
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
