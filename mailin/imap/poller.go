package imap

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/replydesk/replydesk/mailin"
)

// Store is what the poller needs from the store (threads.Store implements it): the
// messages and the checkpoint committed together, and the state `status` shows.
type Store interface {
	// AcceptMailbox stores msgs and skipped and moves the checkpoint to cp in one
	// transaction; nil means all of it is on disk.
	AcceptMailbox(ctx context.Context, cp mailin.Checkpoint, msgs []mailin.Fetched, skipped []mailin.Skipped) ([]mailin.Receipt, error)
	MailboxCheckpoint(ctx context.Context, mailbox string) (mailin.Checkpoint, bool, error)
	MailboxSkipped(ctx context.Context, mailbox string, uidValidity uint32) ([]mailin.Skipped, error)
	RecordMailbox(ctx context.Context, st mailin.MailboxState) error
}

// Poller takes mail in from one mailbox until its context ends.
type Poller struct {
	cfg   Config
	store Store
	log   *slog.Logger
	kick  chan struct{} // the server reported new mail

	renewAt         time.Time // XOAUTH2: reconnect with a fresh token before this one expires
	authFailures    int       // consecutive refused logins
	fetchFails      fetchFailures
	state           mailin.MailboxState
	stateWritten    time.Time
	warnedNoUIDPlus bool

	// The Sent folder (Config.Sent) has a poller of its own, run beside this one; it
	// takes its mail in only after this one has synced (awaitInbox).
	sent  *Poller
	inbox *Poller // of the Sent folder's poller: the mailbox it belongs to
	syncs syncNotes
}

// New checks cfg; Run does the work.
func New(cfg Config, store Store, log *slog.Logger) (*Poller, error) {
	if errs := cfg.Validate(); len(errs) > 0 {
		return nil, fmt.Errorf("imap %s: %w", cfg.Key(), errors.Join(errs...))
	}
	cfg = cfg.withDefaults()
	p := newPoller(cfg, store, log)
	if cfg.Sent != "" {
		p.sent = newPoller(cfg.sentConfig(), store, log)
		p.sent.inbox = p
	}
	return p, nil
}

func newPoller(cfg Config, store Store, log *slog.Logger) *Poller {
	return &Poller{
		cfg: cfg, store: store, log: log.With("mailbox", cfg.Key()),
		kick:  make(chan struct{}, 1),
		state: mailin.MailboxState{Mailbox: cfg.Key()},
	}
}

// Key is the mailbox's name in the store and in status.
func (p *Poller) Key() string { return p.cfg.Key() }

// shutdownGrace bounds how long a stopping poller may finish the batch in hand (its
// commit and move) before its connection is closed under it. Nothing is lost either way:
// what was not moved is below the checkpoint, and is moved at the next start.
const shutdownGrace = 10 * time.Second

// errRenew ends a session so that the next one authenticates with a fresh token.
var errRenew = errors.New("access token about to expire: reconnecting with a fresh one")

// renewDue: the session's access token is about to expire (XOAUTH2).
func (p *Poller) renewDue() bool {
	return !p.renewAt.IsZero() && !time.Now().Before(p.renewAt)
}

// Run takes mail in until ctx ends: connect, take in what waits, wait for more (IDLE
// where offered, polling otherwise), and after any failure reconnect with exponential
// backoff and jitter. When ctx ends it finishes the batch in hand and logs out. The
// Sent folder, when configured, is polled at the same time over a connection of its own.
func (p *Poller) Run(ctx context.Context) {
	if p.sent != nil {
		var wg sync.WaitGroup
		wg.Add(1)
		go func() { defer wg.Done(); p.sent.Run(ctx) }()
		defer wg.Wait()
	}
	if p.cfg.sentFolder {
		p.log.Info("imap poller starting (Sent folder, read only)", "server", p.cfg.Server)
	} else {
		p.log.Info("imap poller starting", "server", p.cfg.Server, "processed", p.cfg.Processed, "sent", p.cfg.Sent)
	}
	backoff := p.cfg.MinBackoff
	for {
		synced, err := p.session(ctx)
		if ctx.Err() != nil {
			break
		}
		if errors.Is(err, errRenew) {
			p.log.Debug("imap session renewed")
			continue
		}
		if synced {
			backoff = p.cfg.MinBackoff
		}
		delay := jitter(backoff)
		p.failed(err)
		p.log.Warn("imap session failed; reconnecting", "err", err, "in", delay.Round(time.Millisecond))
		select {
		case <-ctx.Done():
		case <-time.After(delay):
		}
		if ctx.Err() != nil {
			break
		}
		backoff = min(2*backoff, p.cfg.MaxBackoff)
	}
	p.state.Connected, p.state.Mode = false, ""
	p.writeState(true)
	p.log.Info("imap poller stopped")
}

// jitter spreads reconnects over [d/2, 3d/2).
func jitter(d time.Duration) time.Duration {
	return d/2 + rand.N(d)
}

// session is one connection: log in, select, then sync and wait until something fails.
// synced says whether a sync completed (the backoff starts over).
func (p *Poller) session(ctx context.Context) (synced bool, err error) {
	c, err := p.dial(ctx, p.kick)
	if err != nil {
		return false, err
	}
	defer c.Close()
	hard := context.AfterFunc(ctx, func() { time.AfterFunc(shutdownGrace, func() { c.Close() }) })
	defer hard()
	p.renewAt = time.Time{}
	if err := p.login(ctx, c); err != nil {
		return false, err
	}
	p.authFailures = 0
	m, err := p.open(ctx, c)
	if err != nil {
		return false, err
	}
	for {
		start := time.Now()
		err := m.sync(ctx)
		if err == nil {
			synced = true
			p.synced(m)
			p.syncs.done(start)
			if ctx.Err() == nil {
				err = m.wait(ctx)
			}
		}
		switch {
		case ctx.Err() != nil, errors.Is(err, errRenew):
			c.Logout().Wait()
			return synced, err
		case err != nil:
			return synced, err
		}
	}
}

// synced records a completed sync for status.
func (p *Poller) synced(m *mailbox) {
	mode := "poll"
	if m.idle {
		mode = "idle"
	}
	// The count waiting alone is not worth a write per message: it goes out with the
	// next write (at most stateEvery later).
	changed := !p.state.Connected || p.state.Mode != mode
	p.state.Connected, p.state.Mode, p.state.Waiting = true, mode, m.waiting
	p.state.LastOK = time.Now()
	p.writeState(changed)
}

// failed records a failed session for status, and alerts the operator when a human
// must act: a revoked or unsaved refresh token at once, a refused login when it keeps
// being refused.
func (p *Poller) failed(err error) {
	p.state.Connected, p.state.Mode = false, ""
	p.state.LastError, p.state.LastErrorAt = err.Error(), time.Now()
	p.writeState(true)
	if p.cfg.sentFolder {
		return // the same account's inbox poller tells the operator about its login
	}
	var re *RefreshError
	var ae errAuth
	switch {
	case errors.As(err, &re):
		p.alert("imap_oauth", "IMAP: the OAuth2 refresh token is refused", err)
	case errors.As(err, &ae):
		if p.authFailures++; p.authFailures >= 3 {
			p.alert("imap_login", "IMAP: login keeps failing", err)
		}
	case p.cfg.Tokens != nil && isSaveError(err):
		p.alert("imap_oauth", "IMAP: the rotated OAuth2 refresh token could not be saved", err)
	}
}

func (p *Poller) alert(kind, subject string, err error) {
	p.log.Error(subject, "err", err)
	if p.cfg.Alert != nil {
		p.cfg.Alert(kind+" "+p.cfg.Key(), subject, fmt.Sprintf(
			"replydesk could not take mail in from %s:\n\n  %v\n\nThe mail stays on the server and is taken in once this is fixed; `replydesk status` shows the mailbox's state.",
			p.cfg.Key(), err))
	}
}

// stateEvery bounds how often an unchanged state is written (its last success time).
const stateEvery = 10 * time.Second

// writeState records the state for `status`, now when it changed, else at most every
// stateEvery. It is best effort: a store that cannot take it fails the next commit too.
func (p *Poller) writeState(changed bool) {
	if !changed && time.Since(p.stateWritten) < stateEvery {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := p.store.RecordMailbox(ctx, p.state); err != nil {
		p.log.Warn("could not record mailbox state", "err", err)
		return
	}
	p.stateWritten = time.Now()
	p.state.LastError, p.state.LastErrorAt = "", time.Time{} // written; keep it unless a new one comes
}

// syncNotes tells the Sent folder's poller when the inbox's poller completed a sync.
type syncNotes struct {
	mu   sync.Mutex
	from time.Time     // when the last completed sync started
	next chan struct{} // closed at the next completed sync
}

func (s *syncNotes) done(start time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.from = start
	if s.next != nil {
		close(s.next)
		s.next = nil
	}
}

func (s *syncNotes) last() (time.Time, <-chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.next == nil {
		s.next = make(chan struct{})
	}
	return s.from, s.next
}

// inboxWait bounds how long the Sent folder waits for the inbox's sync (the inbox may
// be unreachable: its mail then waits on the server, and the Sent folder's goes on).
const inboxWait = 2 * time.Minute

// awaitInbox returns once the inbox's poller has completed a sync that started after
// now (it is woken for one), or after inboxWait. A reply in the Sent folder answers mail
// that reached the inbox before it was written, so after such a sync that mail is
// stored, ahead of the reply: filing, in the order of storing, finds its ticket. Without
// this, after an outage the two folders' backlogs race, and a reply stored before the
// customer's message would match no ticket.
func (p *Poller) awaitInbox(ctx context.Context) {
	in := p.inbox
	if in == nil {
		return
	}
	since := time.Now()
	signal(in.kick)
	timeout := time.NewTimer(inboxWait)
	defer timeout.Stop()
	for {
		from, next := in.syncs.last()
		if from.After(since) {
			return
		}
		select {
		case <-next:
		case <-ctx.Done():
			return
		case <-timeout.C:
			p.log.Warn("the inbox did not sync in time; taking in the Sent folder's mail without waiting for it", "waited", inboxWait)
			return
		}
	}
}
