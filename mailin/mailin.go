// Package mailin receives mail: the SMTP and LMTP listeners, the pipe and the importer.
// Every path ends in one call, Acceptor.Accept, that makes the raw bytes durable; mailin
// alone turns its answer into an SMTP reply or an exit code. It imports no other
// replydesk package.
package mailin

import (
	"context"
	"time"
)

// Intake paths, as recorded with each message and shown by `replydesk status`.
const (
	PathSMTP   = "smtp"
	PathLMTP   = "lmtp"
	PathPipe   = "pipe"
	PathImport = "import"
	PathShell  = "shell" // `replydesk reply` and `note`: an agent at the command line
)

// Envelope is what the transport knew about a message besides its bytes.
type Envelope struct {
	Path     string // PathSMTP, PathLMTP, ...
	Remote   string // client address, or "" for the pipe
	Helo     string
	MailFrom string // "" for the null reverse path
	Rcpts    []string
	Received time.Time
	Live     bool // false for imports: file the message, answer nobody
}

// Receipt tells what Accept did.
type Receipt struct {
	ID        int64 // the stored message's number
	Duplicate bool  // the same bytes were already stored; nothing new was written
}

// Acceptor makes a message durable. When Accept returns nil, the raw bytes and envelope
// are on disk (fsynced); any error means they may not be, and the sender must retry.
type Acceptor interface {
	Accept(ctx context.Context, env Envelope, raw []byte) (Receipt, error)
}
