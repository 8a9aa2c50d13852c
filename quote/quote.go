// Package quote separates what is new in an email reply from the quoted history and the
// signature that mail clients add to it.
//
// It works line by line on text/plain (Strip) and on HTML-only replies (StripHTML, which
// removes the quote containers mail clients mark in their HTML, then converts the rest to
// text and strips that as plain text). Every line is classified once (quote, attribution
// such as "On … wrote:", Outlook header block, signature, delimiter, text), and a single
// pass over the classes decides where the quoted history starts. Nothing is backtracked
// over: the time taken grows linearly with the input.
//
// The rules, in short:
//
//   - Lines starting with '#' at the top are agent commands and stay in New untouched.
//   - Text followed by an attribution ("On … wrote:", "El … escribió:", "Em … escreveu:",
//     "Le … a écrit :", "Am … schrieb …:" and more, also wrapped over several lines), a
//     forward or "-----Original Message-----" marker or an Outlook From:/Sent:/To:/Subject:
//     block: everything from that line on is quoted, unless the reply is interleaved (the
//     quote is followed by more text and then by more quote).
//   - An attribution at the very top (a bottom-posted reply) is dropped, and so is the quote
//     right after it when the reply follows it in one piece.
//   - Trailing '>' quotes go; '>' quotes followed by text stay (inline answers need them).
//   - The signature is what follows "-- " (or a long delimiter line followed by at most ten
//     lines), plus trailing "Sent from my iPhone"-style lines.
//
// Nothing is destroyed: Result holds the new text, the quoted part and the signature, and
// callers keep the raw message.
package quote

import "strings"

// Result is a reply split into its parts.
type Result struct {
	// New is the text the sender wrote for this message: agent commands at the top kept,
	// the quoted history and the signature removed.
	New string
	// Quoted is what was removed as quoted history: attribution lines, quotes, forwarded
	// or original messages.
	Quoted string
	// Signature is the signature removed from the end of the new text, with its "-- "
	// delimiter if it had one.
	Signature string
	// Forwarded is true when the message forwards another one (a forward marker, or a
	// header block at the very top).
	Forwarded bool
	// Marker names what the quoted history was recognised by ("attribution", "header
	// block", "original message", "forward", "quote", or for HTML the container, such as
	// "gmail_quote"); empty when nothing was quoted.
	Marker string
}

// Strip splits a text/plain reply. Line endings may be LF or CRLF; every line of New,
// Quoted and Signature is a line of text.
func Strip(text string) Result {
	lines := splitLines(text)
	d := decide(lines, classify(lines))
	return d.result(lines)
}

// splitLines splits text into lines without their line endings (LF, CRLF or a lone CR).
func splitLines(text string) []string {
	n := strings.Count(text, "\n") + 1
	lines := make([]string, 0, n)
	for len(text) > 0 {
		i := strings.IndexAny(text, "\r\n")
		if i < 0 {
			lines = append(lines, text)
			break
		}
		lines = append(lines, text[:i])
		if text[i] == '\r' && i+1 < len(text) && text[i+1] == '\n' {
			i++
		}
		text = text[i+1:]
	}
	return lines
}
