package threads

import (
	"database/sql"
	"fmt"
)

// The SQL of the hot paths (accepting and filing mail), prepared once on the writer
// connection: modernc.org/sqlite has no statement cache, and re-parsing every statement
// cost 18% of the server's CPU under load. Operations use them with tx.Stmt.
const (
	sqlInsertInbox = `INSERT INTO inbox (received, path, remote, helo, mail_from, rcpt_to, live, digest, raw)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (digest) DO NOTHING RETURNING id`
	sqlInboxByDigest = `SELECT id FROM inbox WHERE digest = ?`
	sqlIntakeOK      = `INSERT INTO intake (path, last_ok, accepted) VALUES (?, ?, 1)
		ON CONFLICT (path) DO UPDATE SET last_ok = excluded.last_ok, accepted = accepted + 1`
	sqlInboxProcessed = `SELECT processed FROM inbox WHERE id = ?`
	sqlMarkProcessed  = `UPDATE inbox SET processed = 1 WHERE id = ?`
	sqlInsertTicket   = `INSERT INTO tickets (subject, status, queue, category, customer, created, updated, due, follows)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`
	sqlCustomerReplied = `UPDATE tickets SET updated = ?,
		status = CASE WHEN status IN ('pending', 'resolved') THEN 'open' ELSE status END WHERE id = ?`
	sqlInsertMessage = `INSERT INTO messages (ticket_id, inbox_id, direction, kind, message_id, from_addr,
		to_addrs, cc_addrs, subject, date, text, body, attachments, matched_by, flags, notes, malformed, list_id)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`
	sqlTouchTicket  = `UPDATE tickets SET updated = ? WHERE id = ?`
	sqlAgentReplied = `UPDATE tickets SET updated = ?1,
		status = CASE WHEN status = 'suspended' THEN status ELSE 'pending' END,
		first_response = coalesce(first_response, ?1),
		assignee = CASE WHEN assignee = '' THEN ?2 ELSE assignee END WHERE id = ?3`
	sqlTicketLifecycle     = `SELECT status, resolved_at FROM tickets WHERE id = ?`
	sqlTicketExists        = `SELECT id FROM tickets WHERE id = ?`
	sqlIsParticipant       = `SELECT ticket_id FROM participants WHERE ticket_id = ? AND address = ?`
	sqlAddParticipant      = `INSERT INTO participants (ticket_id, address, role) VALUES (?, ?, ?) ON CONFLICT DO NOTHING`
	sqlAddEvent            = `INSERT INTO events (ticket_id, at, actor, kind, detail) VALUES (?, ?, ?, ?, ?)`
	sqlOutboundByMessageID = `SELECT id, ticket_id, to_addrs FROM messages WHERE message_id = ? AND direction = 'out' ORDER BY id LIMIT 1`
	sqlMarkOutboundFailed  = `UPDATE messages SET delivery_status = 'failed', delivery_error = ? WHERE id = ?`
	sqlAddBouncing         = `INSERT INTO bouncing (address, since, reason) VALUES (?, ?, ?) ON CONFLICT (address) DO UPDATE SET since = excluded.since, reason = excluded.reason`
	sqlClearBouncing       = `DELETE FROM bouncing WHERE address = ?`
	sqlTicketsReferencing  = `SELECT DISTINCT m.ticket_id FROM refs r JOIN messages m ON m.id = r.message_row WHERE r.ref = ? AND m.ticket_id <> ?`
	sqlMergedInto          = `SELECT merged_into FROM tickets WHERE id = ? AND merged_into IS NOT NULL`
	sqlOnlyListMail        = `SELECT NOT EXISTS (SELECT 1 FROM messages WHERE ticket_id = ? AND (kind <> 'auto' OR list_id <> ?))`
	sqlMergeMessages       = `UPDATE messages SET ticket_id = ? WHERE ticket_id = ?`
	sqlMergeParticipants   = `INSERT INTO participants (ticket_id, address, role) SELECT ?, address, role FROM participants WHERE ticket_id = ? ON CONFLICT DO NOTHING`
	sqlDropParticipants    = `DELETE FROM participants WHERE ticket_id = ?`
	sqlMarkMerged          = `UPDATE tickets SET merged_into = ?, updated = ?, due = NULL WHERE id = ?`
	sqlMergeTimes          = `UPDATE tickets SET created = min(created, (SELECT created FROM tickets WHERE id = ?1)) WHERE id = ?2`
	sqlMessageIDSender     = `SELECT m.ticket_id, m.from_addr, m.kind FROM messages m WHERE m.message_id = ? ORDER BY m.id LIMIT 1`
	sqlTicketForResponse   = `SELECT id, subject, status, queue, category, customer, assignee, language, created, due FROM tickets WHERE id = ?`
	sqlIsBouncing          = `SELECT count(*) FROM bouncing WHERE address = ?`
	sqlTicketQueue         = `SELECT queue, assignee FROM tickets WHERE id = ?`
	sqlAutoRepliesTo       = `SELECT count(*), coalesce(sum(at >= ?3), 0) FROM autoreplies WHERE address = ?1 AND at >= ?2`
	sqlAutoRepliesOn       = `SELECT count(*), coalesce(sum(at >= ?3), 0) FROM autoreplies WHERE ticket_id = ?1 AND at >= ?2`
	sqlEarlierTickets      = `SELECT id, subject, status, language FROM tickets WHERE customer = ? AND id <> ? AND merged_into IS NULL ORDER BY id DESC LIMIT 5`
	sqlQueueIntent         = `INSERT INTO outbox (message_row, ticket_id, kind, mail_from, rcpt_to, raw, status, next_attempt, created, intent, about_row)
		VALUES (?, ?, ?, ?, ?, x'', 'compose', ?, ?, ?, ?)`
	sqlComposeDue = `SELECT o.id, o.ticket_id, o.kind, o.intent, coalesce(m.text, m.body, ''), coalesce(m.inbox_id, 0),
		coalesce(m.attachments, '[]') <> '[]' FROM outbox o
		LEFT JOIN messages m ON m.id = o.about_row WHERE o.status = 'compose' AND o.id > ? ORDER BY o.id LIMIT ?`
	sqlComposedMail    = `UPDATE outbox SET status = 'queued', next_attempt = ? WHERE id = ? AND status = 'compose'`
	sqlComposedRaw     = `INSERT INTO outbox_raw (id, raw) VALUES (?, ?)`
	sqlComposeFailed   = `UPDATE outbox SET status = 'failed', last_error = ?, done_at = ? WHERE id = ? AND status = 'compose'`
	sqlComposedMessage = `UPDATE messages SET subject = ?, body = ?, delivery_status = coalesce(?, delivery_status), delivery_error = coalesce(?, delivery_error)
		WHERE id = (SELECT message_row FROM outbox WHERE id = ?)`
	sqlComposedLanguage = `UPDATE tickets SET language = ? WHERE id = (SELECT ticket_id FROM outbox WHERE id = ?) AND language = ''`
	sqlLogAutoReply     = `INSERT INTO autoreplies (address, ticket_id, at) VALUES (?, ?, ?)`
	sqlDueMail          = `SELECT o.id, o.ticket_id, o.kind, o.mail_from, o.rcpt_to, r.raw, o.attempts FROM outbox o
		JOIN (SELECT q.id, sum(length(qr.raw)) OVER (ORDER BY q.next_attempt, q.id) - length(qr.raw) AS before
			FROM outbox q JOIN outbox_raw qr ON qr.id = q.id
			WHERE q.status = 'queued' AND q.next_attempt <= ?1 ORDER BY q.next_attempt, q.id LIMIT ?2) d ON d.id = o.id
		JOIN outbox_raw r ON r.id = o.id
		WHERE d.before < ?3 ORDER BY o.next_attempt, o.id`
	sqlNextMailDue         = `SELECT min(next_attempt) FROM outbox WHERE status = 'queued'`
	sqlOutboxDone          = `UPDATE outbox SET status = ?, done_at = ?, last_error = ?, attempts = attempts + 1 WHERE id = ?`
	sqlOutboxRetry         = `UPDATE outbox SET attempts = attempts + 1, next_attempt = ?, last_error = ? WHERE id = ?`
	sqlOutboxMessageStatus = `UPDATE messages SET delivery_status = ?, delivery_error = ? WHERE id = (SELECT message_row FROM outbox WHERE id = ?)`
	sqlOutboxTicket        = `SELECT ticket_id, message_row FROM outbox WHERE id = ?`
	sqlOutboxCounts        = `SELECT coalesce(sum(status = 'queued' AND attempts = 0), 0), coalesce(sum(status = 'queued' AND attempts > 0), 0), coalesce(sum(status = 'failed'), 0), coalesce(sum(status = 'sent'), 0), coalesce(sum(status = 'compose'), 0) FROM outbox`
	sqlMarkQueued          = `UPDATE messages SET delivery_status = 'queued' WHERE id = ?`
	sqlSetResolvedAt       = `UPDATE tickets SET resolved_at = ? WHERE id = ?`
	sqlParticipants        = `SELECT address, role FROM participants WHERE ticket_id = ? ORDER BY CASE role WHEN 'customer' THEN 0 WHEN 'cc' THEN 1 ELSE 2 END, address`
	sqlEvents              = `SELECT at, actor, kind, detail FROM events WHERE ticket_id = ? ORDER BY id`
	sqlOverdueTickets      = `SELECT t.id FROM tickets t WHERE t.status = 'open' AND t.first_response IS NULL AND t.due < ? AND t.merged_into IS NULL ORDER BY t.id`
	sqlCountBouncing       = `SELECT count(*) FROM bouncing`
	sqlInsertRef           = `INSERT INTO refs (message_row, ref) VALUES (?, ?)`
	sqlTicketOfMessageID   = `SELECT ticket_id FROM messages WHERE message_id = ? ORDER BY id LIMIT 1`
	sqlTicketReferencing   = `SELECT m.ticket_id FROM refs r JOIN messages m ON m.id = r.message_row WHERE r.ref = ? ORDER BY r.message_row LIMIT 1`
	sqlLoadPending         = `SELECT id, received, path, mail_from, rcpt_to, live, length(raw), attempts, last_error FROM inbox WHERE processed = 0 AND id > ? ORDER BY id LIMIT ?`
	sqlSetAsideList        = `SELECT id, received, path, mail_from, attempts, last_error FROM inbox WHERE processed = 2 ORDER BY id DESC LIMIT ?`
	sqlCountSetAside       = `SELECT count(*) FROM inbox WHERE processed = 2`
	sqlRefile              = `UPDATE inbox SET processed = 0, attempts = 0, set_aside_at = NULL WHERE processed = 2 AND (?1 = 0 OR id = ?1)`
	sqlInboxMessage        = `SELECT i.received, i.path, i.remote, i.mail_from, i.rcpt_to, length(i.raw), i.processed, i.attempts, i.last_error,
		coalesce((SELECT m.ticket_id FROM messages m WHERE m.inbox_id = i.id), 0), substr(i.raw, 1, ?2) FROM inbox i WHERE i.id = ?1`
	sqlClaimAlert = `INSERT INTO alerts (kind, last_sent) VALUES (?1, ?2)
		ON CONFLICT (kind) DO UPDATE SET last_sent = excluded.last_sent WHERE last_sent <= ?3`
	sqlSetMessageNotes   = `UPDATE messages SET notes = ? WHERE id = ?`
	sqlOutboxRaw         = `SELECT coalesce(r.raw, x''), o.status FROM outbox o LEFT JOIN outbox_raw r ON r.id = o.id WHERE o.id = ?`
	sqlNotificationSent  = `SELECT id FROM messages WHERE message_id = ? AND ticket_id = ? AND direction = 'out' ORDER BY id LIMIT 1`
	sqlOtherAgentReplied = `SELECT m.from_addr, m.date FROM messages m WHERE m.ticket_id = ?1 AND m.direction = 'in' AND m.kind = 'agent'
		AND m.id > ?2 AND m.from_addr <> ?3 AND m.flags NOT LIKE '%command_error%' ORDER BY m.id LIMIT 1`
	sqlCustomerLatest = `SELECT m.message_id, coalesce((SELECT group_concat(r.ref, char(10)) FROM refs r WHERE r.message_row = m.id), '')
		FROM messages m WHERE m.ticket_id = ? AND m.direction = 'in' AND m.kind = 'customer' AND m.message_id <> '' ORDER BY m.id DESC LIMIT 1`
	sqlCopiedParticipants = `SELECT address FROM participants WHERE ticket_id = ? AND role = 'cc' ORDER BY address`
	sqlRelayAuthor        = `SELECT a.from_addr, o.ticket_id FROM outbox o JOIN messages a ON a.id = o.about_row
		WHERE o.message_row = ? AND o.kind = 'agent_reply'`
	sqlCountFileAttempt = `UPDATE inbox SET attempts = attempts + 1, last_error = ? WHERE id = ?`
	sqlSetAside         = `UPDATE inbox SET processed = 2, last_error = ?, set_aside_at = ? WHERE id = ? AND processed = 0`
	sqlIntakeError      = `INSERT INTO intake (path, last_error, last_error_at) VALUES (?, ?, ?) ON CONFLICT (path) DO UPDATE SET last_error = excluded.last_error, last_error_at = excluded.last_error_at`
	sqlIntakeListen     = `INSERT INTO intake (path, listen) VALUES (?, ?) ON CONFLICT (path) DO UPDATE SET listen = excluded.listen`
	sqlCountMalformed   = `SELECT count(*) FROM messages WHERE malformed = 1`
	sqlCountAccepted    = `SELECT count(*) FROM inbox`
	sqlCountUnprocessed = `SELECT count(*) FROM inbox WHERE processed = 0`
	sqlRawMessage       = `SELECT raw FROM inbox WHERE id = ?`
	sqlIntakeStatus     = `SELECT path, listen, accepted, last_ok, last_error, last_error_at FROM intake ORDER BY path`
	sqlTicketCounts     = `SELECT status, count(*) FROM tickets WHERE merged_into IS NULL GROUP BY status`
	sqlMalformedList    = `SELECT ticket_id, coalesce(inbox_id, 0), from_addr, notes FROM messages WHERE malformed = 1 ORDER BY id DESC LIMIT ?`
	sqlTicketColumns    = `t.id, t.subject, t.status, t.queue, t.category, t.priority, t.customer, t.assignee, (SELECT count(*) FROM messages m WHERE m.ticket_id = t.id), t.created, t.updated, t.due, t.follows, t.merged_into, t.first_response`
	sqlMessagesOfTicket = `SELECT m.direction, m.kind, m.from_addr, m.to_addrs, m.cc_addrs, m.message_id, m.subject, m.date,
		coalesce(m.text, m.body), m.body, m.attachments, m.matched_by, m.flags, m.notes, coalesce(m.inbox_id, 0),
		CASE WHEN o.status = 'sent' AND coalesce(m.delivery_status, '') <> 'failed' THEN 'sent' ELSE coalesce(m.delivery_status, '') END,
		CASE WHEN o.status = 'sent' AND coalesce(m.delivery_status, '') <> 'failed' THEN '' ELSE m.delivery_error END,
		coalesce(o.attempts, 0), o.next_attempt, coalesce(o.id, 0)
		FROM messages m LEFT JOIN outbox o ON o.message_row = m.id WHERE m.ticket_id = ? ORDER BY m.date, m.id`
)

// prepared holds the hot-path statements, prepared on the writer connection.
type prepared struct {
	insertInbox, inboxByDigest, intakeOK                     *sql.Stmt
	inboxProcessed, markProcessed                            *sql.Stmt
	insertTicket, customerReplied, insertMessage, insertRef  *sql.Stmt
	ticketOfMessageID, ticketReferencing                     *sql.Stmt
	touchTicket, agentReplied, ticketLifecycle, ticketExists *sql.Stmt
	isParticipant, addParticipant, addEvent                  *sql.Stmt
	outboundByMessageID, markOutboundFailed                  *sql.Stmt
	addBouncing, clearBouncing                               *sql.Stmt
	ticketsReferencing, messageIDSender, mergedInto          *sql.Stmt
	// deciding and recording outbound mail (respond.go, outbound.go)
	ticketForResponse, isBouncing, autoRepliesTo, autoRepliesOn *sql.Stmt
	ticketQueue                                                 *sql.Stmt
	earlierTickets, markQueued, queueIntent, logAutoReply       *sql.Stmt
	setMessageNotes, composedMail, composedRaw, composeFailed   *sql.Stmt
	composedMessage, composedLanguage                           *sql.Stmt
	outboxDone, outboxMessageStatus, outboxRetry, outboxTicket  *sql.Stmt
	// agents' replies (agent.go)
	notificationSent, otherAgentReplied, customerLatest, copiedParticipants *sql.Stmt
}

func prepare(db *sql.DB) (*prepared, error) {
	p := &prepared{}
	for _, s := range []struct {
		dst **sql.Stmt
		sql string
	}{
		{&p.insertInbox, sqlInsertInbox}, {&p.inboxByDigest, sqlInboxByDigest}, {&p.intakeOK, sqlIntakeOK},
		{&p.inboxProcessed, sqlInboxProcessed}, {&p.markProcessed, sqlMarkProcessed},
		{&p.insertTicket, sqlInsertTicket}, {&p.customerReplied, sqlCustomerReplied},
		{&p.insertMessage, sqlInsertMessage}, {&p.insertRef, sqlInsertRef},
		{&p.ticketOfMessageID, sqlTicketOfMessageID}, {&p.ticketReferencing, sqlTicketReferencing},
		{&p.touchTicket, sqlTouchTicket}, {&p.agentReplied, sqlAgentReplied},
		{&p.ticketLifecycle, sqlTicketLifecycle}, {&p.ticketExists, sqlTicketExists},
		{&p.isParticipant, sqlIsParticipant}, {&p.addParticipant, sqlAddParticipant}, {&p.addEvent, sqlAddEvent},
		{&p.outboundByMessageID, sqlOutboundByMessageID}, {&p.markOutboundFailed, sqlMarkOutboundFailed},
		{&p.addBouncing, sqlAddBouncing}, {&p.clearBouncing, sqlClearBouncing},
		{&p.ticketsReferencing, sqlTicketsReferencing}, {&p.messageIDSender, sqlMessageIDSender},
		{&p.mergedInto, sqlMergedInto},
		{&p.ticketForResponse, sqlTicketForResponse}, {&p.isBouncing, sqlIsBouncing}, {&p.ticketQueue, sqlTicketQueue},
		{&p.autoRepliesTo, sqlAutoRepliesTo}, {&p.autoRepliesOn, sqlAutoRepliesOn},
		{&p.earlierTickets, sqlEarlierTickets}, {&p.markQueued, sqlMarkQueued},
		{&p.queueIntent, sqlQueueIntent}, {&p.logAutoReply, sqlLogAutoReply},
		{&p.setMessageNotes, sqlSetMessageNotes}, {&p.composedMail, sqlComposedMail}, {&p.composedRaw, sqlComposedRaw},
		{&p.composeFailed, sqlComposeFailed}, {&p.composedMessage, sqlComposedMessage},
		{&p.composedLanguage, sqlComposedLanguage},
		{&p.outboxDone, sqlOutboxDone}, {&p.outboxMessageStatus, sqlOutboxMessageStatus},
		{&p.outboxRetry, sqlOutboxRetry}, {&p.outboxTicket, sqlOutboxTicket},
		{&p.notificationSent, sqlNotificationSent}, {&p.otherAgentReplied, sqlOtherAgentReplied},
		{&p.customerLatest, sqlCustomerLatest}, {&p.copiedParticipants, sqlCopiedParticipants},
	} {
		st, err := db.Prepare(s.sql)
		if err != nil {
			return nil, fmt.Errorf("prepare %q: %w", s.sql, err)
		}
		*s.dst = st
	}
	return p, nil
}
