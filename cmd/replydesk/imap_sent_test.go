package main

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	goimap "github.com/emersion/go-imap/v2"

	"github.com/replydesk/replydesk/mailin/imap/imaptest"
	"github.com/replydesk/replydesk/threads"
)

// TestServeFilesSentFolder (a real Dovecot): with sent_mailbox, a reply the support
// account sent from its own mail client is filed into the customer's ticket as an agent
// reply (pending, first response) and nobody is mailed for it; the Sent folder's copy
// of replydesk's own confirmation (as Gmail keeps one) is kept in no ticket, and
// `show -inbox N` says why; the Sent folder is never changed; status shows it.
func TestServeFilesSentFolder(t *testing.T) {
	t.Parallel()
	dc := imaptest.StartDovecot(t)
	owner := imaptest.Dial(t, dc.Addr)
	owner.Create("Sent")
	smarthost := startCapture(t, "")
	_, cfg := serveWithSmarthost(t, smarthost.addr, imapTOML(dc.Addr, `sent_mailbox = "Sent"`))
	sentKey := fmt.Sprintf("imap://%s@%s/Sent", imaptest.User, dc.Addr)
	waitFor(t, "both mailboxes connected", func() bool {
		st := readStatus(t, cfg)
		return len(st.IMAP) == 2 && st.IMAP[0].Connected && st.IMAP[1].Connected
	})

	owner.Append("INBOX", customerMessage("carol@example.com", "q1@example.com", "VPN drops", "My VPN drops every hour, please help."))
	waitFor(t, "the confirmation", func() bool { return len(smarthost.to("carol@example.com")) == 1 })
	conf := smarthost.to("carol@example.com")[0]
	waitFor(t, "the agents' notification", func() bool { return len(smarthost.mails()) == 2 })
	reply := "From: Support <support@example.test>\r\nTo: Carol <carol@example.com>\r\nSubject: Re: VPN drops\r\n" +
		"Message-ID: <r1@mail.example.test>\r\nIn-Reply-To: <q1@example.com>\r\nReferences: <q1@example.com>\r\n" +
		"Date: " + time.Now().Format(time.RFC1123Z) + "\r\n\r\nPlease update the client to 4.2.\r\n"
	owner.Append("Sent", reply, goimap.FlagSeen)
	owner.Append("Sent", string(conf.Raw), goimap.FlagSeen) // the provider's copy of what replydesk sent
	sentBefore := owner.Messages("Sent")

	var tk threads.Ticket
	waitFor(t, "the sent reply on the ticket", func() bool {
		st := readStatus(t, cfg)
		if st.Accepted != 3 || st.Unfiled != 0 {
			return false
		}
		_, out, _ := runCmd(t, "", "show", "1", "-config", cfg, "-json")
		return json.Unmarshal([]byte(out), &tk) == nil
	})
	var got *threads.Message
	for i, m := range tk.Messages {
		if m.MessageID == "r1@mail.example.test" {
			got = &tk.Messages[i]
		}
		if m.MessageID == strings.Trim(conf.Msg.Header.Get("Message-Id"), "<>") && m.Direction == "in" {
			t.Errorf("the copy of replydesk's own confirmation was filed: %+v", m)
		}
	}
	if got == nil || got.Kind != "agent" || got.MatchedBy != "headers" || !slices.Contains(got.Flags, "sent_folder") {
		t.Fatalf("the sent reply on #1: %+v", got)
	}
	if tk.Status != "pending" || tk.FirstResponse == nil {
		t.Errorf("#1 after the sent reply: %s, first response %v; want pending, recorded", tk.Status, tk.FirstResponse)
	}
	time.Sleep(time.Second) // anything queued would go out within this
	st := readStatus(t, cfg)
	if n := len(smarthost.mails()); n != 2 || st.Outbox.Composing+st.Outbox.Queued+st.Outbox.Sent != 2 {
		t.Errorf("%d mails sent, outbox %+v: the Sent folder's mail must cause none", n, st.Outbox)
	}

	// The copy: kept, in no ticket, and show -inbox says why.
	copyID := int64(0)
	for id := int64(1); id <= st.Accepted; id++ {
		var m threads.InboxMessage
		_, out, _ := runCmd(t, "", "show", "-inbox", fmt.Sprint(id), "-config", cfg, "-json")
		if json.Unmarshal([]byte(out), &m) == nil && m.State == "not_filed" {
			copyID = id
			if m.Path != "imap-sent" || !strings.Contains(m.Reason, "a copy of mail replydesk sent itself") {
				t.Errorf("inbox %d: %+v", id, m)
			}
		}
	}
	if copyID == 0 {
		t.Fatal("no message kept in no ticket")
	}
	if _, out, _ := runCmd(t, "", "show", "-inbox", fmt.Sprint(copyID), "-config", cfg); !strings.Contains(out, "kept, filed into no ticket: sent mail, not filed: a copy of mail replydesk sent itself") {
		t.Errorf("show -inbox %d:\n%s", copyID, out)
	}

	// The Sent folder as the user left it; status shows it for what it is.
	sameFolder(t, owner.Messages("Sent"), sentBefore)
	var sent mailboxView
	for _, m := range readStatusViews(t, cfg) {
		if m.Mailbox == sentKey {
			sent = m
		}
	}
	if sent.Role != "sent" || sent.Stored != 2 || sent.LastUID != 2 || !sent.Connected {
		t.Errorf("the Sent folder in status: %+v", sent)
	}
	_, out, _ := runCmd(t, "", "status", "-config", cfg)
	if !strings.Contains(out, sentKey+"\n    Sent folder, read only") {
		t.Errorf("status does not show the Sent folder:\n%s", out)
	}
}

func readStatusViews(t *testing.T, cfg string) []mailboxView {
	t.Helper()
	var st struct {
		IMAP []mailboxView `json:"imap"`
	}
	_, out, _ := runCmd(t, "", "status", "-config", cfg, "-json")
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatal(err)
	}
	return st.IMAP
}

// sameFolder fails unless a mailbox holds what it held: UIDs, flags, bytes.
func sameFolder(t *testing.T, got, want []imaptest.Message) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("the Sent folder holds %d messages, held %d", len(got), len(want))
	}
	for i := range want {
		if got[i].UID != want[i].UID || string(got[i].Raw) != string(want[i].Raw) || fmt.Sprint(got[i].Flags) != fmt.Sprint(want[i].Flags) {
			t.Errorf("Sent message %d changed: UID %d flags %v, was UID %d flags %v", i, got[i].UID, got[i].Flags, want[i].UID, want[i].Flags)
		}
	}
}
