package threads

import (
	"bufio"
	"strings"
	"testing"

	"github.com/emersion/go-message/textproto"
)

// Real-looking Authentication-Results values, as the MTAs write them (folded lines
// unfolded the way go-message hands them over).
const (
	arGmailPass = "mx.google.com;\r\n       dkim=pass header.i=@example.com header.s=20230601 header.b=Ab12Cd34;\r\n" +
		"       spf=pass (google.com: domain of ana@example.com designates 209.85.220.41 as permitted sender) smtp.mailfrom=ana@example.com;\r\n" +
		"       dmarc=pass (p=NONE sp=NONE dis=NONE) header.from=example.com"
	arGmailFail = "mx.google.com;\r\n       dkim=fail header.i=@example.com header.s=20230601 header.b=Ab12Cd34;\r\n" +
		"       spf=softfail (google.com: domain of transitioning ana@example.com does not designate 203.0.113.9 as permitted sender) smtp.mailfrom=ana@example.com;\r\n" +
		"       dmarc=fail (p=REJECT sp=REJECT dis=QUARANTINE) header.from=example.com"
	// A mailing service signs with its own domain: DKIM passes, but not for example.com.
	arGmailThirdParty = "mx.google.com;\r\n       dkim=pass header.i=@sendgrid.net header.s=smtpapi header.b=Zz9;\r\n" +
		"       spf=pass (google.com: domain of bounces+123@sendgrid.net designates 167.89.1.2 as permitted sender) smtp.mailfrom=\"bounces+123@sendgrid.net\";\r\n" +
		"       dmarc=fail (p=QUARANTINE sp=QUARANTINE dis=QUARANTINE) header.from=example.com"
	arM365Pass = "spf=pass (sender IP is 209.85.218.41)\r\n smtp.mailfrom=example.com; dkim=pass (signature was verified)\r\n" +
		" header.d=example.com;dmarc=pass action=none\r\n header.from=example.com;compauth=pass reason=100"
	arM365Fail = "spf=fail (sender IP is 198.51.100.7)\r\n smtp.mailfrom=example.com; dkim=none (message not signed)\r\n" +
		" header.d=none;dmarc=fail action=quarantine\r\n header.from=example.com;compauth=fail reason=000"
	// OpenDKIM's comment holds a ';', which go-msgauth alone would split at.
	arOpenDKIMPass = "mail.example.org;\r\n\tdkim=pass (2048-bit key; unprotected) header.d=example.com header.i=@example.com header.a=rsa-sha256 header.s=mail header.b=AbCdEfGh"
	arOpenDKIMFail = "mail.example.org;\r\n\tdkim=fail reason=\"signature verification failed\" (2048-bit key; unprotected) header.d=example.com header.i=@example.com header.a=rsa-sha256 header.s=mail header.b=AbCdEfGh"
	arOpenDMARC    = "mail.example.org; dmarc=pass (p=none dis=none) header.from=example.com"
	arOpenDMARCBad = "mail.example.org; dmarc=fail (p=reject dis=none) header.from=example.com"
	arSPFOnly      = "mail.example.org; spf=pass smtp.mailfrom=ana@example.com"
)

func TestAuthVerdict(t *testing.T) {
	gmail := []string{"mx.google.com"}
	ours := []string{"mail.example.org"}
	tests := []struct {
		name          string
		h             AuthHeaders
		trusted       []string
		from          string
		checked, pass bool
		reason        string // exact, or a substring when prefixed with "~"
	}{
		{name: "gmail pass", h: AuthHeaders{arGmailPass}, trusted: gmail, from: "example.com", checked: true, pass: true,
			reason: "dkim=pass for example.com, dmarc=pass for example.com (authserv mx.google.com)"},
		{name: "gmail fail", h: AuthHeaders{arGmailFail}, trusted: gmail, from: "example.com", checked: true,
			reason: "dkim=fail for example.com, dmarc=fail for example.com (authserv mx.google.com)"},
		{name: "gmail third-party signature is not aligned", h: AuthHeaders{arGmailThirdParty}, trusted: gmail, from: "example.com", checked: true,
			reason: "dkim=pass for sendgrid.net (not example.com), dmarc=fail for example.com (authserv mx.google.com)"},
		{name: "gmail not trusted", h: AuthHeaders{arGmailPass}, trusted: ours, from: "example.com",
			reason: "no Authentication-Results from a trusted authserv-id"},
		{name: "trusted id is case-insensitive", h: AuthHeaders{arGmailPass}, trusted: []string{" MX.Google.COM "}, from: "EXAMPLE.com.", checked: true, pass: true,
			reason: "~dkim=pass for example.com"},
		{name: "m365 pass", h: AuthHeaders{arM365Pass}, trusted: []string{NoAuthservID}, from: "example.com", checked: true, pass: true,
			reason: "dkim=pass for example.com, dmarc=pass for example.com (authserv (none))"},
		{name: "m365 fail", h: AuthHeaders{arM365Fail}, trusted: []string{NoAuthservID}, from: "example.com", checked: true,
			reason: "dkim=none for none, dmarc=fail for example.com (authserv (none))"},
		{name: "m365 without NoAuthservID is not trusted", h: AuthHeaders{arM365Pass}, trusted: ours, from: "example.com"},
		{name: "postfix opendkim pass", h: AuthHeaders{arOpenDKIMPass}, trusted: ours, from: "example.com", checked: true, pass: true,
			reason: "dkim=pass for example.com (authserv mail.example.org)"},
		{name: "postfix opendkim fail", h: AuthHeaders{arOpenDKIMFail}, trusted: ours, from: "example.com", checked: true,
			reason: "dkim=fail for example.com (authserv mail.example.org)"},
		{name: "postfix opendmarc on top of opendkim", h: AuthHeaders{arOpenDMARC, arOpenDKIMFail}, trusted: ours, from: "example.com", checked: true, pass: true,
			reason: "dmarc=pass for example.com (authserv mail.example.org)"},
		{name: "only the topmost trusted counts", h: AuthHeaders{arOpenDMARCBad, arOpenDKIMPass}, trusted: ours, from: "example.com", checked: true,
			reason: "dmarc=fail for example.com (authserv mail.example.org)"},
		{name: "spf-only field on top fails", h: AuthHeaders{arSPFOnly, arOpenDKIMPass}, trusted: ours, from: "example.com", checked: true,
			reason: "no dkim or dmarc result for example.com (authserv mail.example.org)"},
		{name: "forged lower field with our id", h: AuthHeaders{
			"mail.example.org; dkim=fail header.d=example.com",
			"mail.example.org; dkim=pass header.d=example.com; dmarc=pass header.from=example.com",
		}, trusted: ours, from: "example.com", checked: true, reason: "dkim=fail for example.com (authserv mail.example.org)"},
		{name: "forged field with another id", h: AuthHeaders{"evil.example; dkim=pass header.d=example.com"}, trusted: ours, from: "example.com"},
		{name: "untrusted field above ours is skipped", h: AuthHeaders{"amavis.internal; dkim=fail header.d=example.com", arOpenDKIMPass, "evil.example; dkim=fail"},
			trusted: ours, from: "example.com", checked: true, pass: true},
		{name: "two trusted servers: topmost wins", h: AuthHeaders{arGmailFail, arOpenDKIMPass}, trusted: []string{"mail.example.org", "mx.google.com"}, from: "example.com", checked: true,
			reason: "~(authserv mx.google.com)"},
		{name: "multiple results, one aligned pass", h: AuthHeaders{"mail.example.org 1; spf=pass smtp.mailfrom=example.com; dkim=fail header.d=example.com; dkim=pass header.d=mailgun.org; dkim=pass header.d=example.com; dmarc=none header.from=example.com"},
			trusted: ours, from: "example.com", checked: true, pass: true,
			reason: "dkim=fail for example.com, dkim=pass for mailgun.org (not example.com), dkim=pass for example.com, dmarc=none for example.com (authserv mail.example.org)"},
		{name: "dkim for a parent domain", h: AuthHeaders{"mail.example.org; dkim=pass header.d=example.com"}, trusted: ours, from: "support.example.com", checked: true, pass: true},
		{name: "dkim for a subdomain", h: AuthHeaders{"mail.example.org; dkim=pass header.d=mail.example.com"}, trusted: ours, from: "example.com", checked: true, pass: true},
		{name: "dkim header.i subdomain only", h: AuthHeaders{"mail.example.org; dkim=pass header.i=ana@eu.example.com"}, trusted: ours, from: "example.com", checked: true, pass: true,
			reason: "dkim=pass for eu.example.com (authserv mail.example.org)"},
		{name: "dkim for a lookalike domain", h: AuthHeaders{"mail.example.org; dkim=pass header.d=notexample.com"}, trusted: ours, from: "example.com", checked: true,
			reason: "dkim=pass for notexample.com (not example.com) (authserv mail.example.org)"},
		{name: "dkim for a tld", h: AuthHeaders{"mail.example.org; dkim=pass header.d=com"}, trusted: ours, from: "example.com", checked: true},
		{name: "dkim for a sibling is not aligned (approximation)", h: AuthHeaders{"mail.example.org; dkim=pass header.d=a.example.com"}, trusted: ours, from: "b.example.com", checked: true},
		{name: "dkim pass without domain", h: AuthHeaders{"mail.example.org; dkim=pass header.s=x"}, trusted: ours, from: "example.com", checked: true,
			reason: "dkim=pass (not example.com) (authserv mail.example.org)"},
		{name: "dmarc pass for another domain", h: AuthHeaders{"mail.example.org; dmarc=pass header.from=evil.com"}, trusted: ours, from: "example.com", checked: true,
			reason: "dmarc=pass for evil.com (not example.com) (authserv mail.example.org)"},
		{name: "dmarc pass only", h: AuthHeaders{"mail.example.org; dkim=none; dmarc=pass header.from=Example.COM"}, trusted: ours, from: "example.com", checked: true, pass: true},
		{name: "case of methods and values", h: AuthHeaders{"MAIL.EXAMPLE.ORG; DKIM=PASS header.d=EXAMPLE.COM"}, trusted: ours, from: "example.com", checked: true, pass: true},
		{name: "none", h: AuthHeaders{"mail.example.org; none"}, trusted: ours, from: "example.com", checked: true,
			reason: "no dkim or dmarc result for example.com (authserv mail.example.org)"},
		{name: "unparseable trusted", h: AuthHeaders{"mail.example.org; dkim=pass header.d=example.com; garbage", arOpenDKIMPass}, trusted: ours, from: "example.com", checked: true,
			reason: "~unreadable Authentication-Results (authserv mail.example.org): msgauth: malformed"},
		{name: "unsupported version", h: AuthHeaders{"mail.example.org 2; dkim=pass header.d=example.com"}, trusted: ours, from: "example.com", checked: true,
			reason: "~unreadable Authentication-Results (authserv mail.example.org): msgauth: unsupported version"},
		{name: "unterminated comment", h: AuthHeaders{"mail.example.org; dkim=pass (oops header.d=example.com"}, trusted: ours, from: "example.com", checked: true,
			reason: "unreadable Authentication-Results (authserv mail.example.org): unterminated comment"},
		{name: "unparseable untrusted is skipped", h: AuthHeaders{"junk (((", "evil; ;;; x", arOpenDKIMPass}, trusted: ours, from: "example.com", checked: true, pass: true},
		{name: "comment cannot inject a result", h: AuthHeaders{"mail.example.org; spf=pass (sender x; dkim=pass header.d=example.com) smtp.mailfrom=x@evil.com"}, trusted: ours, from: "example.com", checked: true,
			reason: "no dkim or dmarc result for example.com (authserv mail.example.org)"},
		{name: "quoted sender cannot inject a result", h: AuthHeaders{`mail.example.org; spf=pass smtp.mailfrom="x;dkim=pass header.d=example.com x"@evil.com`}, trusted: ours, from: "example.com", checked: true,
			reason: "no dkim or dmarc result for example.com (authserv mail.example.org)"},
		{name: "no from domain", h: AuthHeaders{arOpenDKIMPass}, trusted: ours, from: "", checked: true, reason: "no From domain to check (authserv mail.example.org)"},
		{name: "no headers", trusted: ours, from: "example.com", reason: "no Authentication-Results from a trusted authserv-id"},
		{name: "nothing trusted", h: AuthHeaders{arOpenDKIMPass}, from: "example.com", reason: "no trusted authserv-id configured"},
		{name: "long domains are shortened", h: AuthHeaders{"mail.example.org; dkim=fail header.d=" + strings.Repeat("é", 100) + ".com"}, trusted: ours, from: "example.com", checked: true,
			reason: "dkim=fail for " + strings.Repeat("é", 40) + "… (authserv mail.example.org)"},
		{name: "control characters are not quoted", h: AuthHeaders{"mail.example.org; dkim=fail header.d=ex\x01ample.com"}, trusted: ours, from: "example.com", checked: true,
			reason: "dkim=fail for ex?ample.com (authserv mail.example.org)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checked, pass, reason := AuthVerdict(tt.h, tt.trusted, tt.from)
			if checked != tt.checked || pass != tt.pass {
				t.Errorf("checked, pass = %v, %v; want %v, %v (%s)", checked, pass, tt.checked, tt.pass, reason)
			}
			switch {
			case reason == "":
				t.Error("empty reason")
			case strings.HasPrefix(tt.reason, "~"):
				if !strings.Contains(reason, tt.reason[1:]) {
					t.Errorf("reason = %q, want it to contain %q", reason, tt.reason[1:])
				}
			case tt.reason != "" && reason != tt.reason:
				t.Errorf("reason = %q\n          want %q", reason, tt.reason)
			}
		})
	}
}

// TestAuthVerdictHeaderOrder: gomail/textproto Header.Values gives the topmost field
// first, which is the order AuthVerdict expects.
func TestAuthVerdictHeaderOrder(t *testing.T) {
	raw := "Authentication-Results: mail.example.org;\r\n\tdkim=fail header.d=example.com\r\n" +
		"Received: from evil.example by mail.example.org\r\n" +
		"Authentication-Results: mail.example.org; dkim=pass header.d=example.com\r\n" +
		"From: ana@example.com\r\n\r\n"
	h, err := textproto.ReadHeader(bufio.NewReader(strings.NewReader(raw)))
	if err != nil {
		t.Fatal(err)
	}
	checked, pass, reason := AuthVerdict(h.Values("Authentication-Results"), []string{"mail.example.org"}, "example.com")
	if !checked || pass || !strings.Contains(reason, "dkim=fail") {
		t.Errorf("got %v %v %q; want the topmost (dkim=fail) to count", checked, pass, reason)
	}
}

func TestAuthresAligned(t *testing.T) {
	for _, c := range []struct {
		d, from string
		want    bool
	}{
		{"example.com", "example.com", true},
		{"localhost", "localhost", true},
		{"mail.example.com", "example.com", true},
		{"example.com", "a.b.example.com", true},
		{"xample.com", "example.com", false},
		{"com", "example.com", false},
		{"example.com", "com", false},
		{"", "example.com", false},
		{"a.example.com", "b.example.com", false},
	} {
		if got := authresAligned(c.d, c.from); got != c.want {
			t.Errorf("authresAligned(%q, %q) = %v", c.d, c.from, got)
		}
	}
}

// FuzzAuthVerdict: AuthVerdict never panics, always gives a reason, passes only when it
// checked, and a field below the topmost trusted one never changes the verdict.
func FuzzAuthVerdict(f *testing.F) {
	for _, s := range []string{arGmailPass, arGmailFail, arGmailThirdParty, arM365Pass, arM365Fail, arOpenDKIMPass, arOpenDKIMFail, arOpenDMARC, arSPFOnly,
		"mail.example.org; none", "mail.example.org 2; x", "(", `"`, ";", "mail.example.org; dkim=pass (a\\) header.d=example.com", `mail.example.org; spf=pass smtp.mailfrom="a\"b;c"`} {
		f.Add(s, "mail.example.org; dkim=pass header.d=example.com", "example.com")
	}
	trusted := []string{"mail.example.org", "mx.google.com", NoAuthservID}
	f.Fuzz(func(t *testing.T, top, below, from string) {
		checked, pass, reason := AuthVerdict(AuthHeaders{top, below}, trusted, from)
		if reason == "" {
			t.Fatal("empty reason")
		}
		if pass && !checked {
			t.Fatal("pass without a check")
		}
		if strings.ContainsAny(reason, "\r\n\x00") {
			t.Fatalf("reason %q has control characters", reason)
		}
		c1, p1, r1 := AuthVerdict(AuthHeaders{top}, trusted, from)
		if c1 && (c1 != checked || p1 != pass || r1 != reason) {
			t.Fatalf("a field below the topmost trusted one changed the verdict: %v %v %q vs %v %v %q", c1, p1, r1, checked, pass, reason)
		}
	})
}
