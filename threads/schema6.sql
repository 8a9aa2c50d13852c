-- Schema version 6: the bytes of composed mail move out of the outbox row.
--
-- An outbox row changes state several times (composed, sent, retried), and SQLite
-- rewrites a whole row, overflow pages and all, whenever its size changes: with the mail
-- in the row, marking it sent copied the whole mail again. outbox_raw holds the bytes
-- once, written when the mail is composed; outbox.raw stays empty.
CREATE TABLE outbox_raw (
	id  INTEGER PRIMARY KEY, -- outbox.id
	raw BLOB NOT NULL
);
INSERT INTO outbox_raw (id, raw) SELECT id, raw FROM outbox WHERE length(raw) > 0;
UPDATE outbox SET raw = x'' WHERE length(raw) > 0;
