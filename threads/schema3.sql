-- Schema version 3: outbound mail (the durable outbox).

-- outbox: mail waiting to be delivered, written in the same transaction as the ticket
-- change that causes it. message_row is the outbound message shown on the ticket.
CREATE TABLE outbox (
	id           INTEGER PRIMARY KEY,
	message_row  INTEGER NOT NULL REFERENCES messages(id),
	ticket_id    INTEGER NOT NULL REFERENCES tickets(id),
	kind         TEXT    NOT NULL,            -- confirmation, notification, ask_details, agent_reply
	mail_from    TEXT    NOT NULL,            -- envelope sender; '' for auto-replies
	rcpt_to      TEXT    NOT NULL,            -- one per line
	raw          BLOB    NOT NULL,
	status       TEXT    NOT NULL DEFAULT 'queued', -- queued, sent, failed
	attempts     INTEGER NOT NULL DEFAULT 0,
	next_attempt INTEGER NOT NULL,
	last_error   TEXT    NOT NULL DEFAULT '',
	created      INTEGER NOT NULL,
	done_at      INTEGER
);
CREATE INDEX outbox_due ON outbox(next_attempt) WHERE status = 'queued';
CREATE INDEX outbox_message ON outbox(message_row);

-- autoreplies: when we answered whom automatically, for the rate limits.
CREATE TABLE autoreplies (
	address   TEXT    NOT NULL,
	ticket_id INTEGER NOT NULL,
	at        INTEGER NOT NULL
);
CREATE INDEX autoreplies_address ON autoreplies(address, at);
CREATE INDEX autoreplies_ticket ON autoreplies(ticket_id, at);

-- The customer's language (en, es, pt), once known.
ALTER TABLE tickets ADD COLUMN language TEXT NOT NULL DEFAULT '';

-- The customer's earlier tickets, listed in every notification.
CREATE INDEX tickets_customer ON tickets(customer, id);
