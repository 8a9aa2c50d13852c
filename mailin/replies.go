package mailin

import (
	"errors"
	"fmt"
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
	replyNoRoom       = &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 1}, Message: "Insufficient system resources, try again later"}
	replyNoStorage    = &smtp.SMTPError{Code: 452, EnhancedCode: smtp.EnhancedCode{4, 3, 1}, Message: "Insufficient system storage now, try again later"} // to MAIL, as RFC 1870 §6.1 has it
	// Written by the guard itself, before go-smtp would.
	replyLineTooLong = &smtp.SMTPError{Code: 500, EnhancedCode: smtp.EnhancedCode{5, 5, 2}, Message: "Command line too long (the limit is 2048 octets), closing connection"}
	replyJunk        = &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 7, 0}, Message: "Too many commands that send no mail, closing connection"}
)

// replyLine formats a reply as go-smtp would write it.
func replyLine(r *smtp.SMTPError) string {
	c := r.EnhancedCode
	return fmt.Sprintf("%d %d.%d.%d %s\r\n", r.Code, c[0], c[1], c[2], r.Message)
}

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
	case errors.Is(err, errNoRoom):
		return replyNoRoom
	case errors.As(err, &ne) && ne.Timeout():
		return replyTimeout
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, smtp.ErrDataReset):
		return replyTimeout // the client went away or gave up; nobody reads this reply
	}
	ref := errorRef.Add(1)
	log.Error("message not accepted, asked the sender to retry", "ref", ref, "err", err)
	return &smtp.SMTPError{
		Code:         451,
		EnhancedCode: smtp.EnhancedCode{4, 3, 0},
		Message:      "Temporary local problem, try again later (ref " + strconv.FormatInt(ref, 10) + ")",
	}
}
