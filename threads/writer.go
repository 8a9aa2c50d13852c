package threads

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
)

// maxBatch bounds one group commit, so one transaction stays short.
const maxBatch = 512

// writer owns the single write connection. Callers queue operations; the writer takes
// whatever is queued, runs it all in one transaction, commits once (one fsync) and only
// then answers each caller. It never waits to fill a batch: measured here, a batching
// timer lowered throughput (see shared/notes/group-commit.md).
type writer struct {
	db       *sql.DB
	lazySync bool // the connection's synchronous is NORMAL (background commits)
	log      *slog.Logger
	queue    chan *writeOp
	quit     chan struct{}
	done     chan struct{}
	stopOnce sync.Once
	commits  atomic.Int64
	ops      atomic.Int64
}

type writeOp struct {
	apply      func(*sql.Tx) error
	result     chan error // buffered: the writer never blocks on a caller
	background bool       // filing, composing, delivery marks: never in a sender's commit
}

func startWriter(db *sql.DB, log *slog.Logger) *writer {
	w := &writer{
		db:    db,
		log:   log,
		queue: make(chan *writeOp, maxBatch),
		quit:  make(chan struct{}),
		done:  make(chan struct{}),
	}
	go w.run()
	return w
}

// do queues fn and waits until the transaction that ran it has committed (nil) or failed.
// Once queued, an operation is always answered: ctx only bounds the wait for a queue slot.
func (w *writer) do(ctx context.Context, fn func(*sql.Tx) error, background bool) error {
	op := &writeOp{apply: fn, result: make(chan error, 1), background: background}
	select {
	case w.queue <- op:
	case <-w.done:
		return ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-op.result:
		return err
	case <-w.done:
		select {
		case err := <-op.result:
			return err
		default:
			return ErrClosed
		}
	}
}

func (w *writer) stop() {
	w.stopOnce.Do(func() { close(w.quit) })
	<-w.done
}

func (w *writer) run() {
	defer close(w.done)
	var fg, bg []*writeOp
	deferred := 0 // commits of senders' writes while background work waited
	for {
		if len(fg) == 0 && len(bg) == 0 {
			select {
			case op := <-w.queue:
				fg, bg = sortOp(fg, bg, op)
			case <-w.quit:
				w.drain()
				return
			}
		}
	fill:
		for len(fg)+len(bg) < maxBatch {
			select {
			case op := <-w.queue:
				fg, bg = sortOp(fg, bg, op)
			default:
				break fill
			}
		}
		// Senders first: their commit never carries background work, and background
		// work waits while senders keep coming, up to maxDeferred of their commits.
		if len(fg) > 0 && (len(bg) == 0 || deferred < maxDeferred) {
			w.commitBatch(fg)
			fg = fg[:0]
			if len(bg) > 0 {
				deferred++
			}
			continue
		}
		if len(bg) > 0 {
			w.commitBatch(bg)
			bg, deferred = bg[:0], 0
		}
	}
}

// maxDeferred bounds how many commits of senders' writes may pass background work
// that is waiting (filing, composing and delivery marks still progress under load).
const maxDeferred = 4

func sortOp(fg, bg []*writeOp, op *writeOp) ([]*writeOp, []*writeOp) {
	if op.background {
		return fg, append(bg, op)
	}
	return append(fg, op), bg
}

// drain answers what was queued before stop, so no caller waits forever.
func (w *writer) drain() {
	for {
		select {
		case op := <-w.queue:
			w.commitBatch([]*writeOp{op})
		default:
			return
		}
	}
}

// commitBatch runs every operation in one transaction. If one operation fails, the batch
// is rolled back and each operation is retried on its own, so one bad operation cannot
// fail the others; if the commit itself fails, every caller in the batch gets the error.
func (w *writer) commitBatch(batch []*writeOp) {
	err := w.runTx(batch)
	if err != nil && len(batch) > 1 {
		if _, isApply := err.(applyError); isApply {
			for _, op := range batch {
				op.result <- w.runTx([]*writeOp{op})
			}
			return
		}
	}
	if err != nil {
		w.log.Error("write transaction failed", "ops", len(batch), "err", err)
	}
	for _, op := range batch {
		op.result <- err
	}
}

// applyError marks a failure of one operation, as opposed to BEGIN or COMMIT.
type applyError struct{ error }

func (e applyError) Unwrap() error { return e.error }

func (w *writer) runTx(batch []*writeOp) (err error) {
	if err := w.syncFor(batch[0].background); err != nil {
		return err
	}
	tx, err := w.db.Begin()
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	for _, op := range batch {
		if err := safeApply(op.apply, tx); err != nil {
			tx.Rollback()
			return applyError{err}
		}
	}
	if err := tx.Commit(); err != nil {
		tx.Rollback()
		return fmt.Errorf("commit: %w", err)
	}
	w.commits.Add(1)
	w.ops.Add(int64(len(batch)))
	return nil
}

// syncFor sets how the next commit reaches the disk. Senders' commits are fsynced
// (synchronous=FULL): their 250 promises the message is on disk. Background commits
// (filing, composed mail, delivery marks) are not (NORMAL): in WAL mode they are still
// atomic and in order, and the next fsynced commit, or checkpoint, makes them durable
// with it. A power cut can lose only the last of them, and each is redone: a message
// not marked filed is filed again, an intent not marked composed is composed again
// (same Message-ID, same bytes), a mail not marked sent is sent again (delivery is at
// least once in any case). A process crash loses nothing: the OS has the writes.
func (w *writer) syncFor(background bool) error {
	if background == w.lazySync {
		return nil
	}
	mode := "FULL"
	if background {
		mode = "NORMAL"
	}
	if _, err := w.db.Exec("PRAGMA synchronous = " + mode); err != nil {
		return fmt.Errorf("set synchronous %s: %w", mode, err)
	}
	w.lazySync = background
	return nil
}

// safeApply turns a panic in an operation into an error, so the writer survives it.
func safeApply(fn func(*sql.Tx) error, tx *sql.Tx) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic in write operation: %v", r)
		}
	}()
	return fn(tx)
}
