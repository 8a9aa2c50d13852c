-- Schema version 4: mail that cannot be filed is set aside instead of retried forever;
-- operator alerts; the mailing list of each message (late list mail may merge tickets
-- that hold only that list's mail).

-- inbox.processed: 0 waiting, 1 filed, 2 set aside (filing failed fileAttempts times;
-- `replydesk refile` puts it back to 0). attempts and last_error say why.
ALTER TABLE inbox ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0;
ALTER TABLE inbox ADD COLUMN last_error TEXT NOT NULL DEFAULT '';
ALTER TABLE inbox ADD COLUMN set_aside_at INTEGER;
CREATE INDEX inbox_set_aside ON inbox(id) WHERE processed = 2;

-- alerts: when the operator was last mailed about each kind of failure (at most hourly).
CREATE TABLE alerts (
	kind      TEXT PRIMARY KEY,
	last_sent INTEGER NOT NULL
);

ALTER TABLE messages ADD COLUMN list_id TEXT NOT NULL DEFAULT '';

-- Outbound mail starts as an intent: filing decides what mail a ticket change causes and
-- records it here, in its own transaction (status 'compose', raw empty, intent = the
-- Responder's snapshot, about_row = the message the mail is about). Composers render,
-- compose and sign it outside the filing transaction, then set raw and status 'queued'.
ALTER TABLE outbox ADD COLUMN intent TEXT NOT NULL DEFAULT '';
ALTER TABLE outbox ADD COLUMN about_row INTEGER;
CREATE INDEX outbox_compose ON outbox(id) WHERE status = 'compose';
