package imaptest

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// Client is a second mail client on the test server: it appends, looks, and changes
// mailboxes as the mailbox's owner would.
type Client struct {
	t testing.TB
	c *imapclient.Client
}

// Dial logs in to addr (plain text: loopback test servers only).
func Dial(t testing.TB, addr string) *Client {
	t.Helper()
	c, err := imapclient.DialInsecure(addr, nil)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	if err := c.Login(User, Password).Wait(); err != nil {
		c.Close()
		t.Fatalf("login: %v", err)
	}
	cl := &Client{t: t, c: c}
	t.Cleanup(func() { c.Close() })
	return cl
}

// Append adds raw to mailbox and returns its UID.
func (c *Client) Append(mailbox, raw string, flags ...imap.Flag) imap.UID {
	c.t.Helper()
	uid, err := c.TryAppend(mailbox, raw, flags...)
	if err != nil {
		c.t.Fatal(err)
	}
	return uid
}

// TryAppend is Append for other goroutines than the test's: it returns the error.
func (c *Client) TryAppend(mailbox, raw string, flags ...imap.Flag) (imap.UID, error) {
	cmd := c.c.Append(mailbox, int64(len(raw)), &imap.AppendOptions{Flags: flags, Time: time.Now()})
	if _, err := cmd.Write([]byte(raw)); err != nil {
		cmd.Close()
		return 0, fmt.Errorf("append to %s: %w", mailbox, err)
	}
	if err := cmd.Close(); err != nil {
		return 0, fmt.Errorf("append to %s: %w", mailbox, err)
	}
	data, err := cmd.Wait()
	if err != nil {
		return 0, fmt.Errorf("append to %s: %w", mailbox, err)
	}
	return data.UID, nil
}

// Message is what a mailbox holds.
type Message struct {
	UID   imap.UID
	Flags []imap.Flag
	Raw   []byte
}

// Has reports whether the message carries flag (case-insensitively).
func (m Message) Has(flag imap.Flag) bool {
	for _, f := range m.Flags {
		if strings.EqualFold(string(f), string(flag)) {
			return true
		}
	}
	return false
}

// Messages lists a mailbox read-only (EXAMINE: no flag changes), oldest first; a
// mailbox that does not exist is empty.
func (c *Client) Messages(mailbox string) []Message {
	c.t.Helper()
	sel, err := c.c.Select(mailbox, &imap.SelectOptions{ReadOnly: true}).Wait()
	if err != nil {
		if strings.Contains(err.Error(), "NONEXISTENT") || strings.Contains(strings.ToLower(err.Error()), "doesn't exist") ||
			strings.Contains(strings.ToLower(err.Error()), "no such mailbox") {
			return nil
		}
		c.t.Fatalf("examine %s: %v", mailbox, err)
	}
	defer func() { c.c.Unselect().Wait() }()
	if sel.NumMessages == 0 {
		return nil
	}
	bufs, err := c.c.Fetch(imap.SeqSet{{Start: 1, Stop: 0}}, &imap.FetchOptions{
		UID: true, Flags: true, BodySection: []*imap.FetchItemBodySection{{Peek: true}},
	}).Collect()
	if err != nil {
		c.t.Fatalf("fetch %s: %v", mailbox, err)
	}
	var out []Message
	for _, b := range bufs {
		m := Message{UID: b.UID, Flags: b.Flags}
		if len(b.BodySection) > 0 {
			m.Raw = b.BodySection[0].Bytes
		}
		out = append(out, m)
	}
	return out
}

// AddFlags sets flags on the messages with these UIDs in mailbox.
func (c *Client) AddFlags(mailbox string, uids []imap.UID, flags ...imap.Flag) {
	c.t.Helper()
	if _, err := c.c.Select(mailbox, nil).Wait(); err != nil {
		c.t.Fatalf("select %s: %v", mailbox, err)
	}
	defer func() { c.c.Unselect().Wait() }()
	err := c.c.Store(imap.UIDSetNum(uids...), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: flags}, nil).Close()
	if err != nil {
		c.t.Fatalf("store flags: %v", err)
	}
}

// Create makes a mailbox.
func (c *Client) Create(mailbox string) {
	c.t.Helper()
	if err := c.c.Create(mailbox, nil).Wait(); err != nil {
		c.t.Fatalf("create %s: %v", mailbox, err)
	}
}

// Recreate deletes and creates a mailbox again: its UIDVALIDITY changes.
func (c *Client) Recreate(mailbox string) {
	c.t.Helper()
	if err := c.c.Delete(mailbox).Wait(); err != nil {
		c.t.Fatalf("delete %s: %v", mailbox, err)
	}
	c.Create(mailbox)
}

// UIDValidity reads a mailbox's UIDVALIDITY.
func (c *Client) UIDValidity(mailbox string) uint32 {
	c.t.Helper()
	st, err := c.c.Status(mailbox, &imap.StatusOptions{UIDValidity: true}).Wait()
	if err != nil {
		c.t.Fatalf("status %s: %v", mailbox, err)
	}
	return st.UIDValidity
}
