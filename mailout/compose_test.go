package mailout

import (
	"bytes"
	"net/mail"
	"sort"
	"strings"
	"testing"
	"time"
)

// TestHeaderInjection: a customer's subject and display name full of CR, LF, NUL and
// Bcc-looking text give a mail whose header fields are exactly the ones we write.
func TestHeaderInjection(t *testing.T) {
	t.Parallel()
	evil := "Hi\r\nBcc: victim@example.org\r\n\r\nfake body\x00\nX-Evil: 1\rSubject: spoofed"
	raw, msgID, err := Compose(Draft{
		From: "support@example.test", FromName: "Support\r\nBcc: a@b",
		To:      []*mail.Address{{Name: evil, Address: "alice@example.com"}},
		ReplyTo: "support+r1-abcdefghijklm@example.test", Subject: "[Support #1] " + evil,
		InReplyTo: "orig@example.com", References: []string{"root@example.com"}, Language: "en",
		AutoReply: true, ThreadTopic: evil, ThreadSeed: "1", ThreadStart: time.Now(),
		Text: "text", HTML: "<p>html</p>",
	})
	if err != nil {
		t.Fatal(err)
	}
	msg, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for k := range msg.Header {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	want := "Auto-Submitted Content-Language Content-Type Date From In-Reply-To Message-Id Mime-Version References Reply-To Subject Thread-Index Thread-Topic To X-Auto-Response-Suppress"
	if got := strings.Join(keys, " "); got != want {
		t.Fatalf("header fields:\n got %s\nwant %s\n%s", got, want, raw)
	}
	for k, v := range msg.Header {
		if len(v) != 1 {
			t.Errorf("%s appears %d times", k, len(v))
		}
	}
	to, err := msg.Header.AddressList("To")
	if err != nil || len(to) != 1 || to[0].Address != "alice@example.com" {
		t.Fatalf("To: %v %v", to, err)
	}
	if strings.Contains(string(raw), "\nBcc:") || strings.Contains(string(raw), "\nX-Evil") || bytes.Contains(raw, []byte{0}) {
		t.Fatalf("injected text reached the header:\n%s", raw)
	}
	if msgID == "" || !strings.Contains(msg.Header.Get("Message-Id"), msgID) {
		t.Fatalf("Message-ID %q", msgID)
	}
}

func TestComposeRefusesBadAddresses(t *testing.T) {
	t.Parallel()
	for _, addr := range []string{"a@b\r\nBcc: c@d", "a@b, c@d", "<a@b>", "Name <a@b>", "", "a@b\x00", "not-an-address"} {
		_, _, err := Compose(Draft{From: "support@example.test", To: []*mail.Address{{Address: addr}}, Subject: "x", Text: "x", HTML: "x"})
		if err == nil {
			t.Errorf("address %q accepted", addr)
		}
	}
}

func TestSaysTooLittle(t *testing.T) {
	t.Parallel()
	for text, want := range map[string]bool{
		"hello":                 true,
		"Help!!!":               true,
		"human please":          true,
		"hola, ayuda por favor": true,
		"bom dia, socorro":      true,
		"falar com atendente":   true,
		"The CSV export fails with error 500 since Monday": false,
		"Mi factura de octubre está duplicada":             false,
	} {
		if got := saysTooLittle("", text); got != want {
			t.Errorf("saysTooLittle(%q) = %v", text, got)
		}
	}
	if saysTooLittle("Export to CSV fails with error 500", "help") {
		t.Error("a descriptive subject is substance enough")
	}
}
