package imap

import (
	"fmt"
	"time"

	"github.com/replydesk/replydesk/mailin"
)

// progressEvery is how often a long sync (a backfill) logs how far it is, and updates
// the number of messages waiting in status.
const progressEvery = 5 * time.Second

// progressFrom: syncs of at least this many messages log their progress.
const progressFrom = 500

type progress struct {
	p          *Poller
	total, got int
	start      time.Time
	last       time.Time
}

func newProgress(p *Poller, total int) *progress {
	now := time.Now()
	if total >= progressFrom {
		p.log.Info("taking in the mail waiting on the server", "messages", total)
	}
	return &progress{p: p, total: total, start: now, last: now}
}

func (g *progress) done(m *mailbox, n int) {
	g.got += n
	m.waiting = max(0, g.total-g.got)
	if g.total < progressFrom || time.Since(g.last) < progressEvery {
		return
	}
	g.last = time.Now()
	g.p.log.Info("taking in", "done", g.got, "of", g.total, "per_second", g.rate())
	g.p.state.Connected, g.p.state.Waiting = true, m.waiting
	g.p.writeState(true)
}

func (g *progress) finish(m *mailbox) {
	if g.total >= progressFrom {
		g.p.log.Info("taken in", "messages", g.got, "of", g.total, "seconds", time.Since(g.start).Round(time.Millisecond).Seconds(), "per_second", g.rate())
	}
}

func (g *progress) rate() int {
	s := time.Since(g.start).Seconds()
	if s <= 0 {
		return 0
	}
	return int(float64(g.got) / s)
}

// alertSkipped tells the operator about messages left on the server.
func (p *Poller) alertSkipped(skipped []mailin.Skipped) {
	if p.cfg.Alert == nil {
		return
	}
	how := "flagged"
	if p.cfg.sentFolder {
		how = "not filed (nothing in the Sent folder is changed)"
	}
	text := fmt.Sprintf("replydesk left %d message(s) on the server in %s, %s, and took in the rest:\n\n", len(skipped), p.cfg.Key(), how)
	for _, k := range skipped {
		text += fmt.Sprintf("  UID %d (%d bytes): %s\n", k.UID, k.Size, k.Reason)
	}
	if p.cfg.sentFolder {
		text += "\n`replydesk status` lists them. They stay in the Sent folder, and out of their tickets."
	} else {
		text += "\n`replydesk status` lists them. Raise [smtp] max_message_bytes, or take them in by hand (`replydesk ingest FILE`)."
	}
	p.cfg.Alert("imap_skipped "+p.cfg.Key(), "IMAP: messages left on the server", text)
}
