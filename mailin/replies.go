package mailin

import (
	"errors"
	"io"
	"log/slog"
	"net"
	"strconv"
	"sync/atomic"

	"github.com/emersion/go-smtp"
)

// The one place where errors become SMTP replies. go-smtp turns any error that is not a
// bare *smtp.SMTPError into a permanent 554 carrying err.Error(), which would bounce mail
// on a full disk and leak file paths, so every reply we give is built here.
var (
	replyNoSuchUser   = &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "No such mailbox here"}
	replyTooLarge     = &smtp.SMTPError{Code: 552, EnhancedCode: smtp.EnhancedCode{5, 3, 4}, Message: "Message too big"}
	replyTimeout      = &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 4, 2}, Message: "Timeout while receiving the message, try again"}
	replyShuttingDown = &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 3, 2}, Message: "Shutting down, try again later"}
	replyBadSender    = &smtp.SMTPError{Code: 553, EnhancedCode: smtp.EnhancedCode{5, 1, 7}, Message: "Malformed sender address"}
)

// errorRef numbers temporary failures so that the reference in a reply finds the log line.
var errorRef atomic.Int64

// replyForData maps an error from reading or storing a message to the reply the client
// gets. Anything unrecognised is a temporary local error: the sender keeps the message
// and retries, so nothing is lost.
func replyForData(err error, log *slog.Logger) *smtp.SMTPError {
	if err == nil {
		return nil
	}
	var se *smtp.SMTPError
	var ne net.Error
	switch {
	case errors.As(err, &se):
		return se
	case errors.Is(err, smtp.ErrDataTooLarge):
		return replyTooLarge
	case errors.As(err, &ne) && ne.Timeout():
		return replyTimeout
	case errors.Is(err, io.ErrUnexpectedEOF):
		return replyTimeout // the client went away; nobody reads this reply
	}
	ref := errorRef.Add(1)
	log.Error("message not accepted, asked the sender to retry", "ref", ref, "err", err)
	return &smtp.SMTPError{
		Code:         451,
		EnhancedCode: smtp.EnhancedCode{4, 3, 0},
		Message:      "Temporary local problem, try again later (ref " + strconv.FormatInt(ref, 10) + ")",
	}
}
