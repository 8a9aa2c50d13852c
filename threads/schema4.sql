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
