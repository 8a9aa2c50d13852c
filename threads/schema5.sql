-- Schema version 5: IMAP intake ([[imap]]). Applied by migrate() in store.go.

-- imap_mailboxes: one row per polled mailbox (name: imap://user@host:port/MAILBOX).
-- The checkpoint (uidvalidity, last_uid) is written in the transaction that stores the
-- messages up to last_uid: every UID up to it is stored or skipped, so a poller that
-- restarts fetches only what is above it, and only moves (or flags) what is below it.
-- The other columns are what `replydesk status` shows, written by the running poller.
CREATE TABLE imap_mailboxes (
	name          TEXT PRIMARY KEY,
	uidvalidity   INTEGER NOT NULL DEFAULT 0,
	last_uid      INTEGER NOT NULL DEFAULT 0,
	backfill_end  INTEGER NOT NULL DEFAULT 0, -- UIDs below it were there at the first sync: taken in silently
	stored        INTEGER NOT NULL DEFAULT 0, -- messages taken in (duplicates not counted)
	connected     INTEGER NOT NULL DEFAULT 0,
	mode          TEXT    NOT NULL DEFAULT '', -- idle, poll; '' when not connected
	waiting       INTEGER NOT NULL DEFAULT 0,  -- messages on the server not yet taken in
	last_ok       INTEGER NOT NULL DEFAULT 0,
	last_error    TEXT    NOT NULL DEFAULT '',
	last_error_at INTEGER NOT NULL DEFAULT 0,
	updated       INTEGER NOT NULL DEFAULT 0
);

-- imap_skipped: messages left on the server (too large, or could not be fetched), per
-- UIDVALIDITY: a new UIDVALIDITY forgets them, and the rescan looks at them again.
CREATE TABLE imap_skipped (
	mailbox     TEXT    NOT NULL,
	uidvalidity INTEGER NOT NULL,
	uid         INTEGER NOT NULL,
	size        INTEGER NOT NULL DEFAULT 0,
	reason      TEXT    NOT NULL,
	at          INTEGER NOT NULL,
	PRIMARY KEY (mailbox, uidvalidity, uid)
) WITHOUT ROWID;
