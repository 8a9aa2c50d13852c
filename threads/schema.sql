-- replydesk store, schema version 1 (schema2.sql and later files build on it). Applied by migrate() in store.go inside one
-- transaction; PRAGMA user_version records the version. Times are UTC unix seconds.

-- inbox: every accepted message, raw bytes exactly as received, plus its envelope.
-- A row is written (and fsynced, group-committed) before the sender hears 250.
CREATE TABLE inbox (
	id         INTEGER PRIMARY KEY,
	received   INTEGER NOT NULL,
	path       TEXT    NOT NULL,              -- smtp, lmtp, pipe, import, imap
	remote     TEXT    NOT NULL DEFAULT '',
	helo       TEXT    NOT NULL DEFAULT '',
	mail_from  TEXT    NOT NULL DEFAULT '',
	rcpt_to    TEXT    NOT NULL DEFAULT '',   -- recipients, one per line
	live       INTEGER NOT NULL DEFAULT 1,    -- 0 for imports: never answered unless -notify
	digest     BLOB    NOT NULL,              -- sha256 of raw: the same bytes are stored once
	raw        BLOB    NOT NULL,
	processed  INTEGER NOT NULL DEFAULT 0     -- set in the transaction that files the message
);
CREATE UNIQUE INDEX inbox_digest ON inbox(digest);
CREATE INDEX inbox_pending ON inbox(id) WHERE processed = 0;

CREATE TABLE tickets (
	id        INTEGER PRIMARY KEY,            -- the ticket number, #id
	subject   TEXT    NOT NULL,
	status    TEXT    NOT NULL,               -- open, pending, resolved, suspended
	queue     TEXT    NOT NULL,
	category  TEXT    NOT NULL DEFAULT 'other',
	priority  TEXT    NOT NULL DEFAULT 'normal',
	customer  TEXT    NOT NULL,
	assignee  TEXT    NOT NULL DEFAULT '',
	created   INTEGER NOT NULL,
	updated   INTEGER NOT NULL,
	due       INTEGER                          -- first-response due time; NULL: none
);
CREATE INDEX tickets_status ON tickets(status, id);

-- messages: every message of a ticket, in and out, as parsed.
CREATE TABLE messages (
	id          INTEGER PRIMARY KEY,
	ticket_id   INTEGER NOT NULL REFERENCES tickets(id),
	inbox_id    INTEGER REFERENCES inbox(id), -- NULL for mail we wrote
	direction   TEXT    NOT NULL,             -- in, out
	kind        TEXT    NOT NULL,             -- customer, agent, note, auto, system
	message_id  TEXT    NOT NULL DEFAULT '',  -- without angle brackets
	from_addr   TEXT    NOT NULL DEFAULT '',
	to_addrs    TEXT    NOT NULL DEFAULT '[]',-- JSON arrays of strings
	cc_addrs    TEXT    NOT NULL DEFAULT '[]',
	subject     TEXT    NOT NULL DEFAULT '',
	date        INTEGER NOT NULL,
	text        TEXT,                         -- NULL: the same as body (stored once)
	body        TEXT    NOT NULL DEFAULT '',
	attachments TEXT    NOT NULL DEFAULT '[]',-- JSON [{name,type,size}]
	matched_by  TEXT    NOT NULL DEFAULT '',  -- token, headers, subject, new
	flags       TEXT    NOT NULL DEFAULT '[]',-- JSON array: malformed, auto_generated, duplicate
	notes       TEXT    NOT NULL DEFAULT '[]',-- JSON array: conflicts, parse problems
	malformed   INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX messages_ticket ON messages(ticket_id, id);
CREATE INDEX messages_message_id ON messages(message_id);
CREATE UNIQUE INDEX messages_inbox ON messages(inbox_id) WHERE inbox_id IS NOT NULL;
CREATE INDEX messages_malformed ON messages(id) WHERE malformed = 1;

-- refs: the Message-IDs each stored message names in In-Reply-To/References, so that a
-- message arriving after a reply to it can find the reply's ticket.
CREATE TABLE refs (
	message_row INTEGER NOT NULL REFERENCES messages(id),
	ref         TEXT    NOT NULL
);
CREATE INDEX refs_ref ON refs(ref);

-- intake: one row per ingest path, for `replydesk status`.
CREATE TABLE intake (
	path        TEXT PRIMARY KEY,            -- smtp, lmtp, pipe, import, imap:<name>
	listen      TEXT    NOT NULL DEFAULT '',
	last_ok     INTEGER NOT NULL DEFAULT 0,
	last_error  TEXT    NOT NULL DEFAULT '',
	last_error_at INTEGER NOT NULL DEFAULT 0,
	accepted    INTEGER NOT NULL DEFAULT 0
);
