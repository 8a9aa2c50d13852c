package threads

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
)

// Reply tokens name a ticket (and, for agents, the agent) and are signed with HMAC-SHA256,
// so a customer cannot file mail into a ticket by guessing its number. They fit an email
// local part, so they travel as support+<token>@domain in Reply-To, and in the reference
// line of every mail we send ("ref:<token>"), which survives clients that drop headers.
//
//	r<ticket>-<mac>            customer token
//	a<ticket>-<agent>-<mac>    agent token; <agent> is a hash of the agent's address
//
// <mac> is 13 base32 characters (64 bits) over "replydesk/token/v1", the kind, ticket and
// agent; <agent> is 8 base32 characters (40 bits of SHA-256 of the lower-case address).

var b32 = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// Token errors. A bad or forged token is ignored by routing, with a note.
var (
	ErrTokenSyntax = errors.New("not a reply token")
	ErrTokenForged = errors.New("reply token signature does not match")
)

// Tokens signs and checks reply tokens with one secret key.
type Tokens struct{ key []byte }

// NewTokens uses key (at least 16 bytes) to sign tokens.
func NewTokens(key []byte) *Tokens { return &Tokens{key: key} }

// TokenClaim is what a valid token says.
type TokenClaim struct {
	Ticket int64
	Agent  string // agent hash ("" for a customer token); compare with AgentHash
}

// Customer is the token customers reply through.
func (t *Tokens) Customer(ticket int64) string {
	return fmt.Sprintf("r%d-%s", ticket, t.mac("r", ticket, ""))
}

// Agent is the token an agent replies through.
func (t *Tokens) Agent(ticket int64, agentEmail string) string {
	h := AgentHash(agentEmail)
	return fmt.Sprintf("a%d-%s-%s", ticket, h, t.mac("a", ticket, h))
}

// Team is the agent token of a notification sent to several agents at once (one mail,
// one signature, instead of one per agent): any configured agent may reply through it.
func (t *Tokens) Team(ticket int64) string { return t.Agent(ticket, teamAgent) }

// teamAgent stands for "any agent" in a Team token; no address hashes like it, since it
// has no @.
const teamAgent = "*"

// TeamHash is the agent hash of a Team token.
var TeamHash = AgentHash(teamAgent)

// AgentHash names an agent inside a token without spelling out the address.
func AgentHash(email string) string {
	sum := sha256.Sum256([]byte(strings.ToLower(strings.TrimSpace(email))))
	return b32.EncodeToString(sum[:5])
}

func (t *Tokens) mac(kind string, ticket int64, agent string) string {
	m := hmac.New(sha256.New, t.key)
	fmt.Fprintf(m, "replydesk/token/v1\x00%s\x00%d\x00%s", kind, ticket, agent)
	return b32.EncodeToString(m.Sum(nil)[:8])
}

var tokenSyntax = regexp.MustCompile(`^(?:r([0-9]{1,18})|a([0-9]{1,18})-([a-z2-7]{8}))-([a-z2-7]{13})$`)

// Check parses and verifies a token (case-insensitively: some MTAs lower-case addresses).
func (t *Tokens) Check(tok string) (TokenClaim, error) {
	m := tokenSyntax.FindStringSubmatch(strings.ToLower(tok))
	if m == nil {
		return TokenClaim{}, ErrTokenSyntax
	}
	kind, num, agent := "r", m[1], ""
	if num == "" {
		kind, num, agent = "a", m[2], m[3]
	}
	ticket, err := strconv.ParseInt(num, 10, 64)
	if err != nil || ticket < 1 {
		return TokenClaim{}, ErrTokenSyntax
	}
	if !hmac.Equal([]byte(m[4]), []byte(t.mac(kind, ticket, agent))) {
		return TokenClaim{}, ErrTokenForged
	}
	return TokenClaim{Ticket: ticket, Agent: agent}, nil
}

// RefLine is the footer line that carries a token in the body of mail we send.
func RefLine(tag string, ticket int64, token string) string {
	return fmt.Sprintf("[%s #%d] ref:%s", tag, ticket, token)
}

var refInBody = regexp.MustCompile(`(?i)\bref:([ra][0-9a-z-]{15,60})\b`)

// TokenCandidates lists what may be tokens, in order of trust: the +tag of each address
// (recipients first), then "ref:" lines in the body. Candidates still need Check.
func TokenCandidates(addrs []string, body string) []string {
	var out []string
	for _, a := range addrs {
		local, _, ok := strings.Cut(a, "@")
		if !ok {
			continue
		}
		if _, tag, tagged := strings.Cut(local, "+"); tagged && len(tag) > 0 && (tag[0] == 'r' || tag[0] == 'a' || tag[0] == 'R' || tag[0] == 'A') {
			out = append(out, tag)
		}
	}
	if len(body) > 1<<20 {
		body = body[:1<<20]
	}
	if !strings.Contains(body, "ref:") && !strings.Contains(body, "REF:") && !strings.Contains(body, "Ref:") {
		return out // the common case, without running the regexp over the whole body
	}
	for _, m := range refInBody.FindAllStringSubmatch(body, 10) {
		out = append(out, m[1])
	}
	return out
}

// LoadOrCreateSecret returns the token key in dataDir/secret, creating it (32 random
// bytes, hex, mode 0600) at first start. The key is written to a temporary file, synced,
// and linked into place, and the directory is synced before the key is used: a key that
// signed mail is never lost to a crash. Link never replaces a file: if another process
// (serve and ingest starting together) got there first, link fails and the winner's key,
// complete since it was synced before its link, is the one read and used.
func LoadOrCreateSecret(dataDir string) ([]byte, error) {
	path := filepath.Join(dataDir, "secret")
	key, err := readSecret(path)
	if !errors.Is(err, os.ErrNotExist) {
		return key, err
	}
	if err := writeSecret(path); err != nil {
		return nil, err
	}
	return readSecret(path)
}

func readSecret(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err == nil {
		key := strings.TrimSpace(string(b))
		if len(key) < 16 {
			return nil, fmt.Errorf("token secret %s is shorter than 16 characters", path)
		}
		return []byte(key), nil
	}
	if errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	return nil, fmt.Errorf("read token secret: %w", err)
}

func writeSecret(path string) error {
	dir := filepath.Dir(path)
	if err := MkdirDurable(dir, 0o750); err != nil {
		return fmt.Errorf("create data dir: %w", err)
	}
	raw := make([]byte, 32)
	rand.Read(raw)
	f, err := os.CreateTemp(dir, ".secret-*")
	if err != nil {
		return fmt.Errorf("create token secret: %w", err)
	}
	defer os.Remove(f.Name())
	_, werr := fmt.Fprintf(f, "%x\n", raw)
	if err := errors.Join(werr, f.Chmod(0o600), f.Sync(), f.Close()); err != nil {
		return fmt.Errorf("write token secret: %w", err)
	}
	if err := os.Link(f.Name(), path); err != nil && !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("install token secret: %w", err)
	}
	// Winner or loser, the entry must be on disk before the key signs anything.
	if err := SyncDir(dir); err != nil {
		return fmt.Errorf("sync data dir: %w", err)
	}
	return nil
}

// MkdirDurable creates dir and any missing parents with perm, syncing the parent of
// each directory it creates, so that the new directories survive a crash.
func MkdirDurable(dir string, perm os.FileMode) error {
	if fi, err := os.Stat(dir); err == nil {
		if !fi.IsDir() {
			return fmt.Errorf("%s is not a directory", dir)
		}
		return nil
	}
	parent := filepath.Dir(dir)
	if parent != dir {
		if err := MkdirDurable(parent, perm); err != nil {
			return err
		}
	}
	if err := os.Mkdir(dir, perm); err != nil {
		if errors.Is(err, os.ErrExist) {
			return nil // made by someone else at the same moment; they sync it
		}
		return err
	}
	return SyncDir(parent)
}

// SyncDir makes dir's entries durable (after a create, link or rename in it).
func SyncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	return errors.Join(f.Sync(), f.Close())
}
