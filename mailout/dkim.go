package mailout

import (
	"bytes"
	"crypto"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"

	"github.com/emersion/go-msgauth/dkim"
)

// DKIM signs outbound mail when a key is configured.
type DKIM struct {
	Domain, Selector string
	Signer           crypto.Signer
}

// LoadDKIM reads a PEM private key (RSA in PKCS#1 or PKCS#8, or Ed25519 in PKCS#8).
func LoadDKIM(keyFile, domain, selector string) (*DKIM, error) {
	b, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, fmt.Errorf("dkim key: %w", err)
	}
	block, _ := pem.Decode(b)
	if block == nil {
		return nil, fmt.Errorf("dkim key %s: no PEM block", keyFile)
	}
	var key any
	if block.Type == "RSA PRIVATE KEY" {
		key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	} else {
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	}
	if err != nil {
		return nil, fmt.Errorf("dkim key %s: %w", keyFile, err)
	}
	switch k := key.(type) {
	case *rsa.PrivateKey:
		return &DKIM{Domain: domain, Selector: selector, Signer: k}, nil
	case ed25519.PrivateKey:
		return &DKIM{Domain: domain, Selector: selector, Signer: k}, nil
	}
	return nil, fmt.Errorf("dkim key %s: not an RSA or Ed25519 key", keyFile)
}

// Sign returns raw with a DKIM-Signature header in front (relaxed/relaxed).
func (d *DKIM) Sign(raw []byte) ([]byte, error) {
	if d == nil {
		return raw, nil
	}
	var out bytes.Buffer
	err := dkim.Sign(&out, bytes.NewReader(raw), &dkim.SignOptions{
		Domain: d.Domain, Selector: d.Selector, Signer: d.Signer,
		HeaderCanonicalization: dkim.CanonicalizationRelaxed, BodyCanonicalization: dkim.CanonicalizationRelaxed,
		HeaderKeys: []string{"From", "To", "Subject", "Date", "Message-Id", "In-Reply-To", "References", "Reply-To", "Auto-Submitted", "Content-Type"},
	})
	if err != nil {
		return nil, fmt.Errorf("dkim sign: %w", err)
	}
	return out.Bytes(), nil
}
