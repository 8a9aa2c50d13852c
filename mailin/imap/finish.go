package imap

import (
	"errors"
	"fmt"

	"github.com/emersion/go-imap/v2"

	"github.com/replydesk/replydesk/mailin"
)

// finish takes stored messages off the mailbox's list of new mail: it moves them to the
// processed mailbox, or flags them when there is none. It runs only after the commit.
//
// Without MOVE it copies, then marks exactly these UIDs \Deleted, then expunges exactly
// these UIDs (UID EXPUNGE, UIDPLUS), each step only after the one before succeeded
// (go-imap's own fallback sends all three at once, and removes the source even when the
// copy failed). It never sends a plain EXPUNGE: that removes every \Deleted message,
// other clients' too. In the Sent folder (the user's) it does nothing: the checkpoint
// alone says what was taken in.
func (m *mailbox) finish(uids []imap.UID) error {
	if len(uids) == 0 || m.p.cfg.sentFolder {
		return nil
	}
	set := imap.UIDSetNum(uids...)
	dest := m.p.cfg.Processed
	if dest == "" {
		return m.store(set, "flag as taken in", m.takenFlag(), imap.FlagSeen)
	}
	if m.move {
		return m.tryCreate(func() error {
			_, err := m.c.Move(set, dest).Wait()
			return wrap(err, "UID MOVE to %s", dest)
		})
	}
	err := m.tryCreate(func() error {
		_, err := m.c.Copy(set, dest).Wait()
		return wrap(err, "UID COPY to %s", dest)
	})
	if err != nil {
		return err
	}
	if err := m.store(set, "mark copied mail", imap.FlagDeleted); err != nil {
		return err
	}
	return m.expunge(uids)
}

// expunge removes exactly uids, which are marked \Deleted. Without UIDPLUS there is no
// safe way: they stay marked, for the owner's mail client to expunge.
func (m *mailbox) expunge(uids []imap.UID) error {
	if len(uids) == 0 {
		return nil
	}
	if !m.uidplus {
		if !m.p.warnedNoUIDPlus {
			m.p.warnedNoUIDPlus = true
			m.p.log.Warn("the server has neither MOVE nor UIDPLUS: taken mail is copied and marked \\Deleted but not expunged " +
				"(a plain EXPUNGE would also remove other clients' deleted mail)")
		}
		return nil
	}
	return wrap(m.c.UIDExpunge(imap.UIDSetNum(uids...)).Close(), "UID EXPUNGE")
}

func (m *mailbox) store(set imap.UIDSet, what string, flags ...imap.Flag) error {
	err := m.c.Store(set, &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: flags}, nil).Close()
	return wrap(err, "UID STORE +FLAGS.SILENT (%s)", what)
}

// flagSkipped marks messages left on the server, so that a human sees them there too
// (best effort: they are listed by status either way). In the Sent folder they are
// only listed.
func (m *mailbox) flagSkipped(skipped []mailin.Skipped) {
	if len(skipped) == 0 {
		return
	}
	var set imap.UIDSet
	for _, k := range skipped {
		set.AddNum(imap.UID(k.UID))
		m.skipped[imap.UID(k.UID)] = true
	}
	if m.p.cfg.sentFolder {
		m.p.alertSkipped(skipped)
		return
	}
	flags := []imap.Flag{imap.FlagFlagged}
	if m.keywords {
		flags = append(flags, KeywordSkipped)
	}
	if err := m.store(set, "flag skipped mail", flags...); err != nil {
		m.p.log.Warn("could not flag messages left on the server", "err", err)
	}
	m.p.alertSkipped(skipped)
}

// tryCreate runs op, and once more after creating the processed mailbox when the server
// says it does not exist (TRYCREATE).
func (m *mailbox) tryCreate(op func() error) error {
	err := op()
	var ie *imap.Error
	if !errors.As(err, &ie) || ie.Code != imap.ResponseCodeTryCreate {
		return err
	}
	m.p.log.Info("creating the processed mailbox", "name", m.p.cfg.Processed)
	if cerr := m.c.Create(m.p.cfg.Processed, nil).Wait(); cerr != nil {
		return fmt.Errorf("CREATE %s: %w (after: %w)", m.p.cfg.Processed, cerr, err)
	}
	return op()
}

func wrap(err error, format string, a ...any) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf(format+": %w", append(a, err)...)
}
