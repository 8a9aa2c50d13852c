package mailout

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"net/mail"
	"strings"
	"testing"

	"github.com/emersion/go-msgauth/dkim"
)

func TestDKIMSignatureVerifies(t *testing.T) {
	t.Parallel()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	d := &DKIM{Domain: "example.test", Selector: "desk", Signer: priv}
	raw, _, err := Compose(Draft{From: "support@example.test", To: []*mail.Address{{Address: "alice@example.com"}},
		Subject: "[Support #1] Hello", Text: "text\n", HTML: "<p>html</p>\n"})
	if err != nil {
		t.Fatal(err)
	}
	signed, err := d.Sign(raw)
	if err != nil {
		t.Fatal(err)
	}
	record := "v=DKIM1; k=ed25519; p=" + base64.StdEncoding.EncodeToString(pub)
	vs, err := dkim.VerifyWithOptions(bytes.NewReader(signed), &dkim.VerifyOptions{
		LookupTXT: func(domain string) ([]string, error) {
			if domain != "desk._domainkey.example.test" {
				t.Fatalf("looked up %s", domain)
			}
			return []string{record}, nil
		},
	})
	if err != nil || len(vs) != 1 || vs[0].Err != nil {
		t.Fatalf("verification: %v %+v", err, vs)
	}
	tampered := bytes.Replace(signed, []byte("Hello"), []byte("Hellp"), 1)
	vs, _ = dkim.VerifyWithOptions(bytes.NewReader(tampered), &dkim.VerifyOptions{LookupTXT: func(string) ([]string, error) { return []string{record}, nil }})
	if len(vs) != 1 || vs[0].Err == nil || !strings.Contains(vs[0].Err.Error(), "") {
		t.Fatal("a tampered message still verifies")
	}
}
