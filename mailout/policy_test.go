package mailout

import (
	"testing"

	"github.com/replydesk/replydesk/threads"
)

func TestAutoReplyGate(t *testing.T) {
	t.Parallel()
	r := NewResponder(ResponderConfig{OurAddresses: []string{"support@example.test"},
		Agents: []Agent{{Email: "ana@example.test"}}}, nil, nil)
	base := threads.Filed{Live: true, Kind: "customer", Message: threads.MessageInfo{From: "alice@example.com"}}
	check := func(name string, mod func(*threads.Filed), want bool) {
		t.Helper()
		f := base
		mod(&f)
		if to, why := r.autoReplyTo(f); (to != "") != want {
			t.Errorf("%s: autoReplyTo = %q (%s), want a reply %v", name, to, why, want)
		}
	}
	check("a customer", func(*threads.Filed) {}, true)
	check("automatic mail", func(f *threads.Filed) { f.Auto = true }, false)
	check("an import", func(f *threads.Filed) { f.Live = false }, false)
	check("our own address", func(f *threads.Filed) { f.Message.From = "Support+r1-x@Example.test" }, false)
	check("an agent", func(f *threads.Filed) { f.Message.From = "ana@example.test" }, false)
	check("a bouncing address", func(f *threads.Filed) { f.Bouncing = true }, false)
	check("10 in 10 minutes to the sender", func(f *threads.Filed) { f.RecentToSender = 10 }, false)
	check("9 in 10 minutes to the sender", func(f *threads.Filed) { f.RecentToSender = 9 }, true)
	check("10 in 10 minutes on the ticket", func(f *threads.Filed) { f.RecentOnTicket = 10 }, false)
	check("50 today", func(f *threads.Filed) { f.TodayToSender = 50 }, false)
	check("no address", func(f *threads.Filed) { f.Message.From = "" }, false)
	check("a broken address", func(f *threads.Filed) { f.Message.From = "a@b\r\nBcc: x@y" }, false)
}

func TestAutoReplyKeyAndRecipient(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"Robot+17@Example.NET": "robot@example.net",
		"robot@example.net":    "robot@example.net",
		"a+b+c@x.example":      "a@x.example",
		"+only@x.example":      "+only@x.example",
		"no-at-sign":           "no-at-sign",
	} {
		if got := threads.AutoReplyKey(in); got != want {
			t.Errorf("AutoReplyKey(%q) = %q, want %q", in, got, want)
		}
	}
	for addr, ok := range map[string]bool{
		"alice@example.com": true, "Alice.Smith+tag@Example.com": true,
		"m\xfcller@example.com": false, "jörg@example.com": false, "bo\x01b@example.com": false,
		"a@b\r\nBcc: c@d": false, "a@b, c@d": false, "": false, "not-an-address": false,
	} {
		if to, why := Recipient(addr); (to != "") != ok || (to == "") == (why == "") {
			t.Errorf("Recipient(%q) = %q, %q; want usable %v", addr, to, why, ok)
		}
	}
}
