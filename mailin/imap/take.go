package imap

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/replydesk/replydesk/mailin"
)

// metaChunk is how many messages one FETCH of sizes and dates covers; batchMessages
// bounds a batch (one commit, one move) besides BatchBytes, so that a backfill's commit
// holds the store's writer only briefly (SMTP sessions queue behind it).
const (
	metaChunk     = 1000
	batchMessages = 500
)

// fetchAttempts: a message that fails to fetch this often is left on the server, flagged.
const fetchAttempts = 3

// batch is a run of messages, in UID order, fetched for one commit.
type batch struct {
	msgs    []mailin.Fetched
	skipped []mailin.Skipped
	failed  []imap.UID // not fetched this time; tried again at the next sync
	last    imap.UID   // the highest UID the batch covers
	fetch   time.Duration
	commit  time.Duration
}

// meta is what a message's size fetch says.
type meta struct {
	uid      imap.UID
	size     int64
	internal time.Time
}

// takeIn fetches uids in batches bounded by bytes and commits each, as a pipeline of
// three stages: while one batch is committed, the next is fetched and the one before is
// moved (the store's fsync and the server's work overlap). A batch is moved only after
// its commit returned.
func (m *mailbox) takeIn(ctx context.Context, uids []imap.UID) error {
	fctx, cancel := context.WithCancel(ctx)
	defer cancel()
	fetched, stored := make(chan *batch, 1), make(chan *batch, 1)
	var fetchErr, moveErr error
	var moveFailed atomic.Bool
	var stages sync.WaitGroup
	stages.Add(2)
	go func() {
		defer stages.Done()
		defer close(fetched)
		fetchErr = m.fetchAll(fctx, uids, fetched)
	}()
	go func() {
		defer stages.Done()
		for b := range stored {
			if moveErr == nil && m.p.renewDue() {
				moveErr = errRenew // moved by the next session (below the checkpoint)
				cancel()
			}
			if moveErr == nil {
				if moveErr = m.finishBatch(b); moveErr != nil {
					moveFailed.Store(true)
					cancel()
				}
			}
		}
	}()
	prog := newProgress(m.p, len(uids))
	var err error
	for b := range fetched {
		if err == nil && m.p.renewDue() {
			err = errRenew // fetched again by the next session, under a fresh token
			cancel()
		}
		if err != nil || moveFailed.Load() {
			continue // drain: the fetcher stops after the batch in hand
		}
		if err = m.commit(ctx, b); err != nil {
			cancel()
			continue
		}
		prog.done(m, len(b.msgs)+len(b.skipped)+len(b.failed))
		stored <- b
	}
	close(stored)
	stages.Wait()
	prog.finish(m)
	switch {
	case err != nil:
		return err
	case moveErr != nil:
		return moveErr
	case ctx.Err() == nil:
		return fetchErr
	}
	return nil
}

// fetchAll fetches sizes and dates for a chunk, then the bodies in batches of at most
// BatchBytes, and hands each batch over.
func (m *mailbox) fetchAll(ctx context.Context, uids []imap.UID, out chan<- *batch) error {
	for len(uids) > 0 && ctx.Err() == nil {
		if m.p.renewDue() {
			return errRenew // a long backfill goes on under a fresh token, from the checkpoint
		}
		chunk := uids[:min(metaChunk, len(uids))]
		uids = uids[len(chunk):]
		metas, err := m.fetchMeta(chunk)
		if err != nil {
			return err
		}
		for len(metas) > 0 && ctx.Err() == nil {
			n, bytes := 0, int64(0)
			for n < len(metas) && (n == 0 || n < batchMessages && bytes+metas[n].size <= m.p.cfg.BatchBytes) {
				bytes += metas[n].size
				n++
			}
			if m.p.renewDue() {
				return errRenew
			}
			start := time.Now()
			b, err := m.fetchBodies(metas[:n])
			if err != nil {
				return err
			}
			b.fetch = time.Since(start)
			metas = metas[n:]
			select {
			case out <- b:
			case <-ctx.Done():
				return nil
			}
		}
	}
	return nil
}

// fetchMeta reads UID, size and INTERNALDATE of uids. A message expunged meanwhile by
// another client is simply not there.
func (m *mailbox) fetchMeta(uids []imap.UID) ([]meta, error) {
	msgs, err := m.c.Fetch(imap.UIDSetNum(uids...), &imap.FetchOptions{UID: true, RFC822Size: true, InternalDate: true}).Collect()
	if err != nil {
		return nil, fmt.Errorf("UID FETCH sizes: %w", err)
	}
	byUID := map[imap.UID]meta{}
	for _, msg := range msgs {
		if msg.UID != 0 {
			byUID[msg.UID] = meta{uid: msg.UID, size: msg.RFC822Size, internal: msg.InternalDate}
		}
	}
	out := make([]meta, 0, len(uids))
	for _, u := range uids {
		if md, ok := byUID[u]; ok {
			out = append(out, md)
		}
	}
	return out, nil
}

// fetchBodies reads the messages' bytes with BODY.PEEK[] (nothing is marked \Seen).
// Too large ones are skipped; one the server does not deliver is tried again at the
// next sync, and skipped after fetchAttempts. A broken connection fails the batch.
func (m *mailbox) fetchBodies(metas []meta) (*batch, error) {
	b := &batch{last: metas[len(metas)-1].uid}
	limit := m.p.cfg.MaxMessageBytes
	var want []imap.UID
	for _, md := range metas {
		if limit > 0 && md.size > limit {
			b.skipped = append(b.skipped, m.skip(md, fmt.Sprintf("too large: %d bytes, the limit (max_message_bytes) is %d", md.size, limit)))
			continue
		}
		want = append(want, md.uid)
	}
	if len(want) == 0 {
		return b, nil
	}
	got, tooBig, fetchErr := m.readBodies(want)
	var ie *imap.Error
	if fetchErr != nil && !errors.As(fetchErr, &ie) {
		return nil, fmt.Errorf("UID FETCH BODY.PEEK[]: %w", fetchErr)
	}
	for _, md := range metas {
		switch raw, ok := got[md.uid]; {
		case limit > 0 && md.size > limit:
		case ok:
			b.msgs = append(b.msgs, mailin.Fetched{UID: uint32(md.uid), Env: m.envelope(md), Raw: raw})
		case tooBig[md.uid]:
			b.skipped = append(b.skipped, m.skip(md, fmt.Sprintf("too large: the server sent more than max_message_bytes (%d)", limit)))
		default:
			reason := "the server did not deliver it"
			if fetchErr != nil {
				reason = fetchErr.Error()
			}
			if m.p.fetchFails.add(md.uid) >= fetchAttempts {
				b.skipped = append(b.skipped, m.skip(md, fmt.Sprintf("could not be fetched (%d attempts): %s", fetchAttempts, reason)))
			} else {
				m.p.log.Warn("message could not be fetched; trying again at the next sync", "uid", md.uid, "reason", reason)
				b.failed = append(b.failed, md.uid)
			}
		}
	}
	return b, nil
}

// readBodies streams the bodies straight from the connection into one buffer each. A
// NO for part of the set comes back as an *imap.Error beside what was delivered.
func (m *mailbox) readBodies(uids []imap.UID) (got map[imap.UID][]byte, tooBig map[imap.UID]bool, err error) {
	got, tooBig = map[imap.UID][]byte{}, map[imap.UID]bool{}
	limit := m.p.cfg.MaxMessageBytes
	cmd := m.c.Fetch(imap.UIDSetNum(uids...), &imap.FetchOptions{UID: true, BodySection: []*imap.FetchItemBodySection{{Peek: true}}})
	for msg := cmd.Next(); msg != nil; msg = cmd.Next() {
		var uid imap.UID
		var raw []byte
		big := false
		for item := msg.Next(); item != nil; item = msg.Next() {
			switch it := item.(type) {
			case imapclient.FetchItemDataUID:
				uid = it.UID
			case imapclient.FetchItemDataBodySection:
				if it.Literal == nil {
					continue
				}
				if limit > 0 && it.Literal.Size() > limit {
					big = true // the rest is discarded by Next
					continue
				}
				raw = make([]byte, it.Literal.Size())
				if _, err := io.ReadFull(it.Literal, raw); err != nil {
					cmd.Close()
					return nil, nil, err
				}
			}
		}
		switch {
		case uid == 0:
		case big:
			tooBig[uid] = true
		case raw != nil:
			got[uid] = raw
		}
	}
	return got, tooBig, cmd.Close()
}

func (m *mailbox) envelope(md meta) mailin.Envelope {
	received := md.internal
	if received.IsZero() {
		received = time.Now()
	}
	path := mailin.PathIMAP
	if m.p.cfg.sentFolder {
		path = mailin.PathIMAPSent
	}
	return mailin.Envelope{
		Path: path, Remote: m.p.cfg.Server, Rcpts: []string{m.p.cfg.Address},
		Received: received, Live: m.backfillEnd == 0 || uint32(md.uid) >= m.backfillEnd,
	}
}

func (m *mailbox) skip(md meta, reason string) mailin.Skipped {
	m.p.log.Warn("message left on the server", "uid", md.uid, "size", md.size, "reason", reason)
	return mailin.Skipped{UID: uint32(md.uid), Size: md.size, Reason: reason, At: time.Now()}
}

// commit stores a batch with the checkpoint. The checkpoint never passes a message that
// failed to fetch.
func (m *mailbox) commit(ctx context.Context, b *batch) error {
	if len(b.failed) > 0 && (m.hold == 0 || b.failed[0] < m.hold) {
		m.hold = b.failed[0]
	}
	cp := m.cp
	last := b.last
	if m.hold != 0 {
		last = min(last, m.hold-1)
	}
	cp.LastUID = max(cp.LastUID, uint32(last))
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), writeTimeout)
	defer cancel()
	start := time.Now()
	rcs, err := m.p.store.AcceptMailbox(wctx, cp, b.msgs, b.skipped)
	if err != nil {
		return err
	}
	b.commit = time.Since(start)
	m.cp = cp
	dups := 0
	for i, f := range b.msgs {
		if rcs[i].Duplicate {
			dups++
		}
		m.p.log.Debug("message stored", "uid", f.UID, "inbox", rcs[i].ID, "duplicate", rcs[i].Duplicate, "live", f.Env.Live)
	}
	if len(b.msgs) > 0 {
		m.p.log.Info("messages taken in", "stored", len(b.msgs)-dups, "duplicates", dups, "checkpoint", cp.LastUID)
	}
	return nil
}

// finishBatch moves (or flags) what a committed batch stored, and flags what it skipped.
func (m *mailbox) finishBatch(b *batch) error {
	start := time.Now()
	taken := make([]imap.UID, 0, len(b.msgs))
	for _, f := range b.msgs {
		taken = append(taken, imap.UID(f.UID))
	}
	if err := m.finish(taken); err != nil {
		return err
	}
	m.flagSkipped(b.skipped)
	m.p.log.Debug("batch timings", "messages", len(b.msgs), "fetch", b.fetch, "commit", b.commit, "move", time.Since(start))
	return nil
}

// fetchFailures counts failed fetches per UID, under one UIDVALIDITY, for this process.
type fetchFailures struct {
	validity uint32
	n        map[imap.UID]int
}

func (f *fetchFailures) reset(validity uint32) {
	if f.validity != validity || f.n == nil {
		f.validity, f.n = validity, map[imap.UID]int{}
	}
}

func (f *fetchFailures) add(uid imap.UID) int {
	f.n[uid]++
	return f.n[uid]
}
