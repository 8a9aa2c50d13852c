package mailin

import "time"

// The contract of mail taken from a mailbox (IMAP, mailin/imap): besides the bytes, the
// store keeps how far each mailbox has been taken in, in the same transaction as the
// messages, so that nothing is moved off the server before it is stored and nothing is
// stored twice after a crash.

// PathIMAP is the intake path of mail taken from a mailbox.
const PathIMAP = "imap"

// PathIMAPSent is the intake path of mail taken from a mailbox's Sent folder: mail the
// support account sent from an ordinary mail client, outside replydesk. It is never a
// customer's message and never causes mail: it is filed, where its reply headers (or
// subject tag) place it, as the agent's reply the customer already received.
const PathIMAPSent = "imap-sent"

// Checkpoint says how far a mailbox has been taken in: every message whose UID is at
// most LastUID, under UIDValidity, is stored or was skipped.
type Checkpoint struct {
	Mailbox     string // the mailbox's key, e.g. imap://support@example.com@imap.example.com:993/INBOX
	UIDValidity uint32
	LastUID     uint32
	// BackfillEnd is the first UID that is live mail: what was in the mailbox at the
	// first sync (UIDs below it) is taken in silently, as an import is. 0: all live.
	// Kept from the first commit under a UIDVALIDITY, so a restart mid-backfill stays silent.
	BackfillEnd uint32
}

// Fetched is one message taken from a mailbox.
type Fetched struct {
	UID uint32
	Env Envelope
	Raw []byte
}

// Skipped is a message left on the server, and why (too large, could not be fetched).
type Skipped struct {
	UID    uint32    `json:"uid"`
	Size   int64     `json:"size"`
	Reason string    `json:"reason"`
	At     time.Time `json:"at"`
}

// MailboxState is what `replydesk status` shows about a mailbox while it is polled.
// Zero LastOK, empty LastError leave the stored values as they were.
type MailboxState struct {
	Mailbox     string
	Connected   bool
	Mode        string // "idle" or "poll" while connected
	Waiting     int    // messages on the server not yet taken in
	LastOK      time.Time
	LastError   string
	LastErrorAt time.Time
}
