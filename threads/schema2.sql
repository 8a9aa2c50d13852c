-- Schema version 2: the ticket model (threading issue). Applied by migrate() in store.go.

-- Lifecycle: when a ticket was resolved (reopen_days counts from here), the resolved
-- ticket a new one follows up, the first agent response (the SLA clock stops there).
ALTER TABLE tickets ADD COLUMN resolved_at INTEGER;
ALTER TABLE tickets ADD COLUMN follows INTEGER REFERENCES tickets(id);
ALTER TABLE tickets ADD COLUMN first_response INTEGER;
CREATE INDEX tickets_overdue ON tickets(due) WHERE status = 'open' AND first_response IS NULL;

-- Outbound delivery state (mail we send is a message with direction 'out').
ALTER TABLE messages ADD COLUMN delivery_status TEXT;       -- queued, sent, failed; NULL for inbound
ALTER TABLE messages ADD COLUMN delivery_error TEXT NOT NULL DEFAULT '';

-- Who takes part in a ticket: the customer, anyone they Cc'd, agents who acted.
CREATE TABLE participants (
	ticket_id INTEGER NOT NULL REFERENCES tickets(id),
	address   TEXT    NOT NULL,       -- lower case
	role      TEXT    NOT NULL,       -- customer, cc, agent
	PRIMARY KEY (ticket_id, address)
) WITHOUT ROWID;


-- The history of each ticket: who changed what, and when.
CREATE TABLE events (
	id        INTEGER PRIMARY KEY,
	ticket_id INTEGER NOT NULL REFERENCES tickets(id),
	at        INTEGER NOT NULL,
	actor     TEXT    NOT NULL,
	kind      TEXT    NOT NULL,       -- opened, reopened, customer_reply, set, bounce, ...
	detail    TEXT    NOT NULL DEFAULT ''
);
CREATE INDEX events_ticket ON events(ticket_id, id);

-- Addresses whose mail bounced: no auto-replies until a human writes from them.
CREATE TABLE bouncing (
	address TEXT PRIMARY KEY,
	since   INTEGER NOT NULL,
	reason  TEXT    NOT NULL
) WITHOUT ROWID;

-- A ticket merged into another (a late message linked them); it keeps its number and
-- history, and its messages move to the surviving ticket.
ALTER TABLE tickets ADD COLUMN merged_into INTEGER REFERENCES tickets(id);
