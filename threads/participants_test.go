package threads

import (
	"context"
	"fmt"
	"strings"
	"testing"
)

// Who a message copies joins the ticket (and gets every agent reply from then on) only
// when the message came by a way a forger cannot take: not when only the subject tag
// (a guessable number) and the From (forgeable) led to the ticket, and never more than
// maxCopied of them.
func TestCopiedPeopleJoinOnlyThroughStrongLinks(t *testing.T) {
	t.Parallel()
	s := openTestStore(t, nil)
	accept(t, s, testMail("first@x", "printer")) // #1, alice's
	forged := "From: Alice <alice@example.com>\r\nTo: support@example.test\r\nCc: mallory@evil.example\r\n" +
		"Subject: Re: [Support #1] printer\r\nMessage-ID: <forged@evil.example>\r\n\r\nAdd my colleague.\r\n"
	accept(t, s, forged)
	var many []string
	for i := range 30 {
		many = append(many, fmt.Sprintf("c%d@example.com", i))
	}
	byHeaders := "From: Alice <alice@example.com>\r\nTo: support@example.test\r\nCc: " + strings.Join(many, ", ") +
		"\r\nSubject: Re: printer\r\nMessage-ID: <second@x>\r\nIn-Reply-To: <first@x>\r\n\r\nCopying my team.\r\n"
	accept(t, s, byHeaders)
	process(t, s)
	tk, err := s.Ticket(context.Background(), 1)
	if err != nil {
		t.Fatal(err)
	}
	cc := 0
	for _, p := range tk.Participants {
		if p.Address == "mallory@evil.example" {
			t.Errorf("a subject tag and a From put %s on the ticket", p.Address)
		}
		if p.Role == "cc" {
			cc++
		}
	}
	if cc != maxCopied {
		t.Errorf("%d copied participants, want the cap of %d", cc, maxCopied)
	}
}
