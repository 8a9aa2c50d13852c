package imap

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/replydesk/replydesk/mailin"
)

// mailbox is the selected mailbox of one session.
type mailbox struct {
	p           *Poller
	c           *imapclient.Client
	cp          mailin.Checkpoint // as committed (the committing goroutine's)
	backfillEnd uint32            // cp.BackfillEnd, read by the fetching goroutine
	skipped     map[imap.UID]bool // left on the server under this UIDVALIDITY
	keywords    bool              // the server keeps $Replydesk
	move        bool              // MOVE (or IMAP4rev2)
	uidplus     bool              // UID EXPUNGE
	idle        bool
	waiting     int      // messages on the server not yet taken in, for status
	hold        imap.UID // this sync: a message that failed to fetch; the checkpoint stays below it
}

// writeTimeout bounds one commit; it runs on even while stopping (the batch in hand).
const writeTimeout = time.Minute

// open selects the mailbox and reads its checkpoint. On the first sync, and when
// UIDVALIDITY changed (the mailbox was rebuilt, the server migrated), it starts again
// from UID 1: the store keeps the same bytes once, so the rescan stores nothing twice.
// The Sent folder is opened read-only (EXAMINE): the server itself then refuses any
// change to it, even the \Seen a fetch could set.
func (p *Poller) open(ctx context.Context, c *imapclient.Client) (*mailbox, error) {
	how, opts := "SELECT", (*imap.SelectOptions)(nil)
	if p.cfg.sentFolder {
		how, opts = "EXAMINE", &imap.SelectOptions{ReadOnly: true}
	}
	sel, err := c.Select(p.cfg.Mailbox, opts).Wait()
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", how, p.cfg.Mailbox, err)
	}
	if sel.UIDNext == 0 { // optional in SELECT's answer; the first sync's silence needs it
		if st, err := c.Status(p.cfg.Mailbox, &imap.StatusOptions{UIDNext: true}).Wait(); err == nil {
			sel.UIDNext = st.UIDNext
		}
		if sel.UIDNext == 0 {
			if data, err := c.UIDSearch(&imap.SearchCriteria{}, nil).Wait(); err == nil {
				for _, u := range data.AllUIDs() {
					sel.UIDNext = max(sel.UIDNext, u+1)
				}
			}
		}
	}
	caps := c.Caps()
	m := &mailbox{p: p, c: c,
		keywords: slices.Contains(sel.PermanentFlags, imap.FlagWildcard),
		move:     caps.Has(imap.CapMove),
		uidplus:  caps.Has(imap.CapUIDPlus) || caps.Has(imap.CapIMAP4rev2),
		idle:     caps.Has(imap.CapIdle) || caps.Has(imap.CapIMAP4rev2),
	}
	cp, found, err := p.store.MailboxCheckpoint(ctx, p.cfg.Key())
	if err != nil {
		return nil, err
	}
	if !found || cp.UIDValidity != sel.UIDValidity {
		if cp, err = p.restart(ctx, cp, found, sel); err != nil {
			return nil, err
		}
	}
	m.cp, m.backfillEnd = cp, cp.BackfillEnd
	skipped, err := p.store.MailboxSkipped(ctx, cp.Mailbox, cp.UIDValidity)
	if err != nil {
		return nil, err
	}
	m.skipped = map[imap.UID]bool{}
	for _, k := range skipped {
		m.skipped[imap.UID(k.UID)] = true
	}
	p.fetchFails.reset(sel.UIDValidity)
	p.log.Debug("mailbox selected", "uidvalidity", sel.UIDValidity, "uidnext", sel.UIDNext, "messages", sel.NumMessages,
		"checkpoint", cp.LastUID, "move", m.move, "uidplus", m.uidplus, "idle", m.idle, "keywords", m.keywords)
	return m, nil
}

// restart commits a fresh checkpoint: the first sync of a mailbox, or a new UIDVALIDITY.
// What is in the mailbox now is taken in silently (an import) on the first sync, and on
// a rescan in flag mode, where everything taken before is still there; in move mode
// what is left after a rescan was never taken, and is answered.
func (p *Poller) restart(ctx context.Context, old mailin.Checkpoint, found bool, sel *imap.SelectData) (mailin.Checkpoint, error) {
	cp := mailin.Checkpoint{Mailbox: p.cfg.Key(), UIDValidity: sel.UIDValidity}
	silent := !found || p.cfg.Processed == ""
	if silent && !p.cfg.BackfillLive {
		cp.BackfillEnd = max(uint32(sel.UIDNext), 1)
	}
	if found {
		p.log.Warn("UIDVALIDITY changed: rescanning the whole mailbox (the store keeps each message once)",
			"old", old.UIDValidity, "new", sel.UIDValidity)
	} else {
		p.log.Info("first sync of this mailbox", "messages", sel.NumMessages, "silent_below_uid", cp.BackfillEnd)
	}
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), writeTimeout)
	defer cancel()
	if _, err := p.store.AcceptMailbox(wctx, cp, nil, nil); err != nil {
		return cp, err
	}
	return cp, nil
}

// sync finishes what an earlier session stored but did not move, then takes in every
// message above the checkpoint.
func (m *mailbox) sync(ctx context.Context) error {
	m.hold = 0
	if err := m.finishStranded(ctx); err != nil {
		return err
	}
	uids, err := m.newUIDs()
	if err != nil {
		return err
	}
	m.waiting = len(uids)
	if len(uids) == 0 {
		return nil
	}
	if m.p.cfg.sentFolder {
		m.p.awaitInbox(ctx) // the mail these answer is stored first
	}
	return m.takeIn(ctx, uids)
}

// newUIDs lists the messages above the checkpoint, oldest first.
func (m *mailbox) newUIDs() ([]imap.UID, error) {
	from := imap.UID(m.cp.LastUID) + 1
	data, err := m.c.UIDSearch(&imap.SearchCriteria{UID: []imap.UIDSet{{{Start: from, Stop: 0}}}}, nil).Wait()
	if err != nil {
		return nil, fmt.Errorf("UID SEARCH: %w", err)
	}
	var out []imap.UID
	for _, u := range data.AllUIDs() {
		if u >= from { // "n:*" also matches the last message when n is past the end
			out = append(out, u)
		}
	}
	slices.Sort(out)
	return out, nil
}

// finishStranded moves (or flags) what is below the checkpoint and still waiting: a
// session that stored it ended before the move. It is stored; it is not fetched again.
// The Sent folder keeps everything: nothing is stranded there.
func (m *mailbox) finishStranded(ctx context.Context) error {
	if m.cp.LastUID == 0 || m.p.cfg.sentFolder {
		return nil
	}
	below := imap.UIDSet{{Start: 1, Stop: imap.UID(m.cp.LastUID)}}
	if m.p.cfg.Processed == "" {
		crit := &imap.SearchCriteria{UID: []imap.UIDSet{below}, NotFlag: []imap.Flag{m.takenFlag()}}
		data, err := m.c.UIDSearch(crit, nil).Wait()
		if err != nil {
			return fmt.Errorf("UID SEARCH for unflagged mail: %w", err)
		}
		return m.finish(m.notSkipped(data.AllUIDs()))
	}
	msgs, err := m.c.Fetch(below, &imap.FetchOptions{UID: true, Flags: true}).Collect()
	if err != nil {
		return fmt.Errorf("UID FETCH FLAGS: %w", err)
	}
	var move, expunge []imap.UID
	for _, msg := range msgs {
		if msg.UID == 0 || msg.UID > imap.UID(m.cp.LastUID) || m.skipped[msg.UID] {
			continue
		}
		if !m.move && m.uidplus && hasFlag(msg.Flags, imap.FlagDeleted) {
			expunge = append(expunge, msg.UID) // copied and marked; only the UID EXPUNGE was missing
		} else {
			move = append(move, msg.UID)
		}
	}
	if len(move)+len(expunge) > 0 {
		m.p.log.Info("moving mail stored before the last session ended", "messages", len(move)+len(expunge))
	}
	if err := m.expunge(expunge); err != nil {
		return err
	}
	return m.finish(move)
}

func (m *mailbox) notSkipped(uids []imap.UID) []imap.UID {
	out := uids[:0]
	for _, u := range uids {
		if !m.skipped[u] {
			out = append(out, u)
		}
	}
	return out
}

// takenFlag marks mail taken in, in flag mode: $Replydesk, or \Seen on a server that
// keeps no keywords.
func (m *mailbox) takenFlag() imap.Flag {
	if m.keywords {
		return KeywordTaken
	}
	return imap.FlagSeen
}

func hasFlag(flags []imap.Flag, f imap.Flag) bool {
	for _, x := range flags {
		if strings.EqualFold(string(x), string(f)) { // imapmemserver lowercases keywords
			return true
		}
	}
	return false
}
