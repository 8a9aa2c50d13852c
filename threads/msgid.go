package threads

import (
	"regexp"
	"strings"
)

// msgIDToken finds <...> groups in a header, the lenient reading of RFC 5322 msg-id lists
// that real mail needs (commas, junk, folded whitespace, missing brackets around some).
var msgIDToken = regexp.MustCompile(`<([^<>]*)>`)

// maxRefs caps how many references of one message are kept (newest last).
const maxRefs = 100

// MsgIDList reads an In-Reply-To or References value: every <id> in order, without the
// brackets, duplicates removed. A value with no brackets at all but one word holding an
// "@" is taken as one id, as some clients write it.
//
// Whitespace inside the brackets (X.400 gateways write "<abc def@x>"; a folded line
// leaves "<abc def@x>" after unfolding) is removed, so the id is kept and matches the
// same id in any other header: Message-ID goes through here too. Such an id must hold
// an "@", so that a comment in angle brackets is not read as one.
func MsgIDList(v string) []string {
	var ids []string
	seen := map[string]bool{}
	for _, m := range msgIDToken.FindAllStringSubmatch(v, -1) {
		id, spaced := withoutSpace(m[1])
		if spaced && !strings.Contains(id, "@") {
			continue
		}
		id = normalizeMsgID(id)
		if validMsgID(id) && !seen[id] {
			seen[id] = true
			ids = append(ids, id)
		}
	}
	if len(ids) == 0 {
		if f := strings.Fields(v); len(f) == 1 && validMsgID(f[0]) && strings.Contains(f[0], "@") && !strings.ContainsAny(f[0], "<>") {
			ids = append(ids, normalizeMsgID(f[0]))
		}
	}
	if len(ids) > maxRefs {
		ids = ids[len(ids)-maxRefs:]
	}
	return ids
}

// withoutSpace removes ASCII whitespace (space, tab, CR, LF, FF, VT) and tells whether
// there was any. It works on bytes: other bytes, valid UTF-8 or not, stay as written.
func withoutSpace(s string) (string, bool) {
	if !strings.ContainsAny(s, " \t\r\n\f\v") {
		return s, false
	}
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case ' ', '\t', '\r', '\n', '\f', '\v':
		default:
			b = append(b, s[i])
		}
	}
	return string(b), true
}

// MessageID reads a Message-ID value: the first <id>, or a bare id without brackets.
func MessageID(v string) string {
	ids := MsgIDList(v)
	if len(ids) == 0 {
		return ""
	}
	return ids[0]
}

// validMsgID rejects ids no client would write and that would only pollute lookups.
func validMsgID(id string) bool {
	if len(id) == 0 || len(id) > 998 {
		return false
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; c < 0x21 || c == 0x7f {
			return false
		}
	}
	return true
}

// normalizeMsgID lower-cases the part after the last "@": RFC 5322 ids compare
// case-sensitively on the left, but the right is a domain, which clients re-case.
// Only ASCII letters change: strings.ToLower would turn invalid UTF-8 into U+FFFD and
// change the bytes (and length) of ids that must compare as written.
func normalizeMsgID(id string) string {
	i := strings.LastIndexByte(id, '@')
	if i < 0 {
		return id
	}
	b := []byte(id)
	for j := i + 1; j < len(b); j++ {
		if 'A' <= b[j] && b[j] <= 'Z' {
			b[j] += 'a' - 'A'
		}
	}
	return string(b)
}
