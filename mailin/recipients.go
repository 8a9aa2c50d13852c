package mailin

import "strings"

// recipients decides which RCPT addresses we take: the configured support addresses and
// their +tag forms, nothing else. That is what makes replydesk never an open relay.
type recipients map[string]bool // lower-case local@domain

func newRecipients(addrs []string) recipients {
	r := recipients{}
	for _, a := range addrs {
		r[strings.ToLower(strings.TrimSpace(a))] = true
	}
	return r
}

// accepts reports whether addr is one of ours. go-smtp has already removed a source
// route and unquoted a quoted local part, so "foo@evil"@ours arrives with two "@": the
// split is at the last "@", and a local part holding "@", "%" or "!" (percent hack, bang
// path) never matches.
func (r recipients) accepts(addr string) bool {
	i := strings.LastIndexByte(addr, '@')
	if i <= 0 || i == len(addr)-1 {
		return false
	}
	local, domain := strings.ToLower(addr[:i]), strings.ToLower(addr[i+1:])
	if strings.ContainsAny(local, "@%!\"\\ ,;:<>()[]") {
		return false
	}
	base, tag, tagged := strings.Cut(local, "+")
	if tagged && !validTag(tag) {
		return false
	}
	return r[base+"@"+domain]
}

// validTag allows the characters of categories and reply tokens.
func validTag(tag string) bool {
	if tag == "" || len(tag) > 200 {
		return false
	}
	for _, c := range tag {
		ok := c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.' || c == '='
		if !ok {
			return false
		}
	}
	return true
}
