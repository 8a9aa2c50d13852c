package mailout

import (
	"regexp"
	"strings"
	"unicode/utf8"

	"github.com/replydesk/replydesk/threads"
)

// Caps, in runes, on a customer's values shown in the mail we write.
const (
	MaxNameRunes    = 80  // display names (and the address shown in their place)
	MaxSubjectRunes = 200 // subjects
)

// Display makes a value from a customer's mail fit to be shown on one line of a mail we
// write: valid UTF-8, one line (threads.OneLine, which also folds Unicode line and
// paragraph separators), at most max runes (cut with an ellipsis), and with no "ref:" our
// own router would read as a reply token. A forged display name can then not add a
// paragraph, a link on a line of its own, or a fake reference line to a confirmation.
// Every one-line customer value reaches the templates through here (Responder.data).
func Display(s string, max int) string {
	s = threads.OneLine(s, len(s))
	if strings.Contains(strings.ToLower(s), "ref:") {
		s = refMarker.ReplaceAllString(s, "$1 :")
	}
	if utf8.RuneCountInString(s) > max {
		r := []rune(s)[:max-1]
		s = strings.TrimRight(string(r), " ") + "…"
	}
	return s
}

// refMarker is what threads.TokenCandidates looks for in a body ("ref:<token>").
var refMarker = regexp.MustCompile(`(?i)\b(ref):`)
