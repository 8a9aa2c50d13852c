package threads

import (
	"fmt"
	"strings"

	"github.com/emersion/go-msgauth/authres"
)

// AuthHeaders are the values of all Authentication-Results header fields of a message,
// in header order: the first is the topmost (the most recently added).
// gomail.Header.Values("Authentication-Results") gives them in that order.
type AuthHeaders []string

// NoAuthservID, listed among the trusted authserv-ids, trusts an Authentication-Results
// field that has no authserv-id at all. Microsoft 365 (Exchange Online) writes its
// results that way ("Authentication-Results: spf=pass (sender IP is ...)
// smtp.mailfrom=...; dkim=pass ... header.d=...;dmarc=pass action=none header.from=...").
// List it only when such a server is the one that receives your mail: Microsoft 365
// tenants also send their mail out with id-less Authentication-Results of their own.
// It can never equal a real authserv-id (parentheses are not allowed in one).
const NoAuthservID = "(none)"

// Limits on what a reason quotes from a header.
const (
	authresMaxResults = 6  // results described in a reason
	authresMaxDomain  = 80 // bytes of a domain or error quoted in a reason
)

// AuthVerdict says whether the receiving MTA authenticated a message's From domain, from
// the Authentication-Results fields h (RFC 8601), for the agent check of SPEC §6.
//
// Only fields whose authserv-id is in trusted (compared case-insensitively) count, and
// of those only the topmost: a sender can add Authentication-Results of their own, with
// any authserv-id, and those are always below the ones our MTA prepends on receipt (RFC
// 8601 §5 asks a border MTA to remove or rename fields claiming its own id; not every
// MTA does, and topmost-only does not depend on it). Note what this means with MTAs that
// write one field per check (Postfix with OpenDKIM and OpenDMARC milters): the topmost
// of our fields must carry the DKIM or DMARC result; one with only an SPF result fails.
//
//   - checked is false when no field comes from a trusted authserv-id: no verdict is
//     possible and the caller relies on the token and From alone.
//   - pass is true when, in that field, DKIM passed for a signing domain (header.d, else
//     the domain of header.i) aligned with fromDomain, or DMARC passed with header.from
//     equal to fromDomain. Alignment is an approximation of DMARC's relaxed alignment
//     without the Public Suffix List: the two domains are equal, or one is a subdomain of
//     the other (a suffix on a dot boundary) and the shorter has at least two labels. It
//     rejects siblings that DMARC would accept (a.example.com vs b.example.com) and would
//     accept a signature by a public suffix such as co.uk, which only its registry could
//     make.
//   - reason is one line for a flag note or the agent's notice, such as
//     "dkim=fail for example.com (authserv mx.example.com)". It quotes at most a few
//     results, shortened, without control characters.
//
// A trusted field that cannot be parsed gives checked=true, pass=false and a reason
// that says so. Comments ("(...)") are removed before parsing: they may hold text the
// sender chose (an envelope address), and go-msgauth's parser would otherwise split at a
// ';' inside one.
func AuthVerdict(h AuthHeaders, trusted []string, fromDomain string) (checked bool, pass bool, reason string) {
	from := authresDomain(fromDomain)
	for _, v := range h {
		id, clean, err := authresPrepare(v)
		if !authresTrusted(id, trusted) {
			continue
		}
		where := " (authserv " + authresQuote(id) + ")"
		if err != nil {
			return true, false, "unreadable Authentication-Results" + where + ": " + authresQuote(err.Error())
		}
		if id == NoAuthservID {
			clean = "x;" + clean // authres.Parse expects an authserv-id first
		}
		_, results, err := authres.Parse(clean)
		if err != nil {
			return true, false, "unreadable Authentication-Results" + where + ": " + authresQuote(err.Error())
		}
		if from == "" {
			return true, false, "no From domain to check" + where
		}
		var desc []string
		describe := func(s string) {
			if len(desc) < authresMaxResults {
				desc = append(desc, s)
			}
		}
		for _, r := range results {
			switch r := r.(type) {
			case *authres.DKIMResult:
				d := authresDomain(r.Domain)
				if d == "" {
					d = authresDomain(r.Identifier)
				}
				ok := r.Value == authres.ResultPass && authresAligned(d, from)
				pass = pass || ok
				describe(authresDescribe("dkim", r.Value, d, from, ok))
			case *authres.DMARCResult:
				d := authresDomain(r.From)
				ok := r.Value == authres.ResultPass && d == from
				pass = pass || ok
				describe(authresDescribe("dmarc", r.Value, d, from, ok))
			}
		}
		if len(desc) == 0 {
			return true, false, "no dkim or dmarc result for " + authresQuote(from) + where
		}
		return true, pass, strings.Join(desc, ", ") + where
	}
	if len(trusted) == 0 {
		return false, false, "no trusted authserv-id configured"
	}
	return false, false, "no Authentication-Results from a trusted authserv-id"
}

// authresDescribe is "dkim=pass for example.com", with "(not <from>)" when the result
// is about another domain.
func authresDescribe(method string, value authres.ResultValue, d, from string, ok bool) string {
	s := method + "=" + authresQuote(string(value))
	if d != "" {
		s += " for " + authresQuote(d)
	}
	if !ok && value == authres.ResultPass {
		s += " (not " + authresQuote(from) + ")"
	}
	return s
}

// authresTrusted reports whether id is one of trusted, case-insensitively.
func authresTrusted(id string, trusted []string) bool {
	if id == "" {
		return false
	}
	for _, t := range trusted {
		if strings.EqualFold(strings.TrimSpace(t), id) {
			return true
		}
	}
	return false
}

// authresPrepare removes comments from a field value and returns its authserv-id
// (NoAuthservID when the value starts with a result instead) and the cleaned value for
// authres.Parse. Inside quoted strings, ';' and white space become '_', so that a
// quoted value (which may hold sender-chosen text) stays one parameter for the parser
// instead of starting a result of its own. err is set when comments or quotes do not
// balance; id is then read from the raw value, so that a trusted but broken field is
// still recognised as trusted.
func authresPrepare(v string) (id, clean string, err error) {
	clean, err = authresClean(v)
	src := clean
	if err != nil {
		src = v
	}
	head, _, _ := strings.Cut(src, ";")
	head = strings.TrimSpace(head)
	switch {
	case strings.Contains(head, "="):
		id = NoAuthservID
	case head == "":
		if err == nil && strings.Contains(src, ";") {
			id = NoAuthservID
		}
	default:
		id = strings.Fields(head)[0]
		if len(id) >= 2 && id[0] == '"' && id[len(id)-1] == '"' {
			id = id[1 : len(id)-1]
		}
	}
	return id, clean, err
}

// authresClean removes RFC 5322 comments (nested, with quoted-pairs), each replaced by
// a space, and neutralises ';' and white space inside quoted strings. It runs in linear
// time.
func authresClean(v string) (string, error) {
	if !strings.ContainsAny(v, "()\"") {
		return v, nil
	}
	var b strings.Builder
	b.Grow(len(v))
	depth, quoted := 0, false
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch {
		case quoted:
			switch {
			case c == '\\' && i+1 < len(v):
				b.WriteByte(c)
				i++
				c = v[i]
				if c == ';' || c == ' ' || c == '\t' || c == '\r' || c == '\n' {
					c = '_'
				}
			case c == '"':
				quoted = false
			case c == ';' || c == ' ' || c == '\t' || c == '\r' || c == '\n':
				c = '_'
			}
			b.WriteByte(c)
		case depth > 0:
			switch c {
			case '\\':
				i++
			case '(':
				depth++
			case ')':
				depth--
				if depth == 0 {
					b.WriteByte(' ')
				}
			}
		case c == '(':
			depth = 1
		case c == ')':
			return "", fmt.Errorf("unbalanced ')'")
		case c == '"':
			quoted = true
			b.WriteByte(c)
		default:
			b.WriteByte(c)
		}
	}
	switch {
	case depth > 0:
		return "", fmt.Errorf("unterminated comment")
	case quoted:
		return "", fmt.Errorf("unterminated quoted string")
	}
	return b.String(), nil
}

// authresDomain is the lower-case domain of a header.d, header.i or header.from value:
// unquoted, after the last '@', without a trailing dot.
func authresDomain(s string) string {
	s = strings.TrimSpace(s)
	if len(s) >= 2 && s[0] == '"' && s[len(s)-1] == '"' {
		s = s[1 : len(s)-1]
	}
	if i := strings.LastIndexByte(s, '@'); i >= 0 {
		s = s[i+1:]
	}
	return strings.ToLower(strings.TrimSuffix(strings.TrimSpace(s), "."))
}

// authresAligned reports whether DKIM domain d is aligned with From domain from: equal
// (strict alignment), or one a subdomain of the other, the shorter having at least two
// labels (see
// AuthVerdict for why this approximates relaxed alignment).
func authresAligned(d, from string) bool {
	if d == "" || from == "" {
		return false
	}
	if d == from {
		return true
	}
	short, long := d, from
	if len(short) > len(long) {
		short, long = long, short
	}
	return strings.Contains(short, ".") && strings.HasSuffix(long, "."+short)
}

// authresQuote makes header text safe for a one-line reason: printable, and short.
func authresQuote(s string) string {
	s = strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f || r == '\uFFFD' || (r >= 0x80 && r < 0xa0) || r == '\u2028' || r == '\u2029' {
			return '?'
		}
		return r
	}, s)
	if len(s) > authresMaxDomain {
		i := authresMaxDomain
		for i > 0 && s[i]&0xc0 == 0x80 {
			i--
		}
		s = s[:i] + "…"
	}
	return s
}
