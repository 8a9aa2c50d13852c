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
//     block: everything from that line on is quoted, unless text that is not a signature
//     follows the '>' quote below it: then the quote is answered inline, and only the
//     attribution goes.
//   - An attribution at the very top (a bottom-posted reply) is dropped, and so is the quote
//     right after it when the reply follows it in one piece.
//   - Trailing '>' quotes go; '>' quotes followed by text stay (inline answers need them).
//     A message that is nothing but quote stays, unless it starts with an attribution.
//   - The signature is what follows "-- " (or a delimiter line of four characters or more,
//     "________", followed by at most ten lines), plus trailing "Sent from my
//     iPhone"-style lines in en, es, pt, fr, de and more.
//
// Lines inside ``` fences are text, whatever they look like.
//
// Nothing is destroyed: Result holds the new text, the quoted part and the signature, and
// callers keep the raw message.
package quote

import (
	"math"
	"strings"
)

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
// Quoted and Signature is a line of text, without its line ending. (A text of 2 GiB or
// more is returned as New unexamined.)
func Strip(text string) Result {
	if len(text) > math.MaxInt32 {
		return Result{New: text}
	}
	ls := newLineSet(text)
	return decide(ls, classify(ls)).result(ls)
}

// lineSet is a text cut into lines, kept as offsets: nothing for the garbage collector to
// scan however many lines there are.
type lineSet struct {
	text  string
	start []int32 // where each line starts
}

func newLineSet(text string) *lineSet {
	ls := &lineSet{text: text, start: make([]int32, 0, strings.Count(text, "\n")+1)}
	for pos := 0; pos < len(text); {
		ls.start = append(ls.start, int32(pos))
		i := strings.IndexByte(text[pos:], '\n')
		if i < 0 {
			break
		}
		pos += i + 1
	}
	return ls
}

// n is the number of lines.
func (ls *lineSet) n() int { return len(ls.start) }

// at returns line i without its line ending.
func (ls *lineSet) at(i int) string { return ls.text[ls.start[i]:ls.end(i)] }

// end returns the offset where line i ends, before its line ending.
func (ls *lineSet) end(i int) int {
	to := len(ls.text)
	if i+1 < len(ls.start) {
		to = int(ls.start[i+1])
	}
	if to > int(ls.start[i]) && ls.text[to-1] == '\n' {
		to--
	}
	if to > int(ls.start[i]) && ls.text[to-1] == '\r' {
		to--
	}
	return to
}
