package mailout

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net/mail"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/replydesk/replydesk/templates"
	"github.com/replydesk/replydesk/threads"
)

// Agent is one [[agent]]: who gets notifications for which queues.
type Agent struct {
	Email, Name string
	Queues      []string // empty: every queue
}

// Policy holds the limits on automatic replies (SPEC §5).
type Policy struct {
	RecentLimit int // auto-replies per address, and per ticket, within threads.RecentWindow (default 10)
	DayLimit    int // ... within a day (default 50)
}

// ResponderConfig is what deciding and composing mail needs.
type ResponderConfig struct {
	Helpdesk        string // name, also the subject tag
	DefaultLanguage string
	From            string   // [outbound] from; "" means the support address the customer wrote to
	OurAddresses    []string // never auto-reply to these
	Agents          []Agent
	SLA             map[string]time.Duration
	Policy          Policy
	DKIM            *DKIM        // nil: mail is not signed
	Log             *slog.Logger // why a message got no auto-reply; nil: slog.Default()
}

// Responder implements threads.Responder: it decides which mail a filed message causes
// and composes it.
type Responder struct {
	cfg    ResponderConfig
	tpl    *templates.Set
	tokens *threads.Tokens
}

// NewResponder uses tpl for the text and tokens for reply addresses.
func NewResponder(cfg ResponderConfig, tpl *templates.Set, tokens *threads.Tokens) *Responder {
	if cfg.Policy.RecentLimit == 0 {
		cfg.Policy.RecentLimit = 10
	}
	if cfg.Policy.DayLimit == 0 {
		cfg.Policy.DayLimit = 50
	}
	return &Responder{cfg: cfg, tpl: tpl, tokens: tokens}
}

// agentCommands are listed in every notification.
var agentCommands = []string{"#note <text>", "#status open|pending|resolved", "#resolve",
	"#assign <agent>", "#category billing|technical|account|feature|other", "#priority low|normal|high|urgent"}

// Decide: a new ticket gets a confirmation (or, when the message says too little to act
// on, a request for details) and a notification to the queue's agents; a customer reply
// notifies the assignee or the queue's agents. Automatic and imported mail gets nothing.
//
// Decide runs inside the filing transaction and only decides: rendering, composing and
// signing happen in Compose, outside it. It returns an error only when reading the store
// fails: what a customer wrote (an address that cannot take mail, a hostile display
// name) never fails filing. A sender we cannot or may not answer gets no auto-reply,
// logged and noted on the message with the reason.
//
// The queue's agents get one notification between them (To: all of them, a team token
// any of them may reply through): one mail to sign instead of one per agent, and each
// agent sees who else was told.
func (r *Responder) Decide(f threads.Filed) ([]threads.Intent, error) {
	if !f.Live || f.Auto || f.Kind != "customer" || (f.Event != "opened" && f.Event != "customer_reply") {
		return nil, nil
	}
	log := r.log().With("ticket", f.Ticket.ID, "message_id", f.Message.MessageID)
	// Decide first, snapshot after: most mail under load (a sender past its limit, a
	// queue without agents) causes nothing, and should cost nothing.
	var to string
	if f.Event == "opened" {
		var why string
		if to, why = r.autoReplyTo(f); to == "" {
			log.Info("no auto-reply", "from", f.Message.From, "reason", why)
			note(f, "no confirmation sent: "+why)
		}
	}
	agents := r.agentsFor(f.Ticket)
	if to == "" && len(agents) == 0 {
		return nil, nil
	}
	var earlier []threads.Ticket
	if f.Earlier != nil {
		var err error
		if earlier, err = f.Earlier(); err != nil {
			return nil, err // the store: filing is retried
		}
	}
	var out []threads.Intent
	if to != "" {
		name := "confirmation"
		if saysTooLittle(f.Message.Subject, f.Message.Text) {
			name = "ask_details"
		}
		rcpt := []*mail.Address{{Name: customerName(f.Message), Address: to}}
		out = append(out, r.intent(f, earlier, name, rcpt, f.Ticket.CustomerToken))
	}
	if len(agents) > 0 {
		var rcpts []*mail.Address
		for _, a := range agents {
			rcpts = append(rcpts, &mail.Address{Name: a.Name, Address: a.Email})
		}
		token := r.tokens.Team(f.Ticket.ID)
		if len(agents) == 1 {
			token = r.tokens.Agent(f.Ticket.ID, agents[0].Email)
		}
		out = append(out, r.intent(f, earlier, "notification", rcpts, token))
	}
	return out, nil
}

// intentData is what Compose needs to write one mail, snapshotted when it is decided
// (the text of the message it is about is read back from the store instead).
type intentData struct {
	Template  string
	To        []*mail.Address
	Token     string
	MessageID string
	Ticket    threads.TicketInfo
	Message   threads.MessageInfo
	Earlier   []threads.Ticket
}

// intent records one mail to write; its Message-ID is chosen now.
func (r *Responder) intent(f threads.Filed, earlier []threads.Ticket, name string, to []*mail.Address, token string) threads.Intent {
	support := r.supportAddress(f.Ticket)
	d := intentData{Template: name, To: to, Token: token, MessageID: newMessageID(support), Ticket: f.Ticket, Message: f.Message}
	d.Message.Text = "" // read back from the store when composing
	for _, e := range earlier {
		d.Earlier = append(d.Earlier, threads.Ticket{ID: e.ID, Subject: e.Subject, Status: e.Status, Language: e.Language})
	}
	data, err := json.Marshal(d)
	if err != nil {
		panic(err) // plain strings, numbers and times
	}
	in := threads.Intent{Kind: name, From: support, MessageID: d.MessageID, Subject: f.Ticket.Subject, Data: data}
	for _, a := range to {
		in.To = append(in.To, a.Address)
	}
	if name == "notification" {
		in.EnvelopeFrom = support // agents' servers may bounce to us; customers' never do
	} else {
		in.Auto = true
	}
	return in
}

// Compose renders, composes and signs one decided mail. It runs outside the filing
// transaction, on the Composer's workers.
func (r *Responder) Compose(c threads.ToCompose) (threads.Composed, error) {
	var d intentData
	if err := json.Unmarshal(c.Data, &d); err != nil {
		return threads.Composed{}, fmt.Errorf("mail %d: unreadable intent: %w", c.OutboxID, err)
	}
	f := threads.Filed{Ticket: d.Ticket, Message: d.Message}
	f.Message.Text = c.Text
	known := f.Ticket.Language
	for _, e := range d.Earlier {
		if known == "" && e.Language != "" {
			known = e.Language // the language of the customer's earlier tickets
		}
	}
	lang := templates.Language(f.Message.ContentLanguage, known, f.Message.Subject+"\n"+f.Message.Text, r.cfg.DefaultLanguage)
	draft := Draft{AutoReply: true}
	renderLang := lang
	if d.Template == "notification" {
		draft = Draft{AutoGenerated: true}
		renderLang = r.cfg.DefaultLanguage // agents read the helpdesk's language; the ticket keeps the customer's
	}
	draft.MessageID = d.MessageID
	m, err := r.mail(f, d.Earlier, d.Template, renderLang, d.To, d.Token, draft)
	if err != nil {
		return threads.Composed{}, fmt.Errorf("%s for #%d: %w", d.Template, f.Ticket.ID, err)
	}
	m.OutboxID, m.Language = c.OutboxID, lang
	return m, nil
}

// customerName is the sender's display name as we show it, or "" when there is none or
// it looks like an address: "victim@bank.com" <attacker@evil.com> would otherwise greet
// the reader as someone the sender is not.
func customerName(m threads.MessageInfo) string {
	name := Display(m.FromName, MaxNameRunes)
	if strings.Contains(name, "@") {
		return ""
	}
	return name
}

// note records on the filed message why mail did not go out, for `show`.
func note(f threads.Filed, text string) {
	if f.Note != nil {
		f.Note(text)
	}
}

func (r *Responder) log() *slog.Logger {
	if r.cfg.Log != nil {
		return r.cfg.Log
	}
	return slog.Default()
}

// autoReplyTo is the one gate every automatic reply passes: no replies to automatic
// mail, to an address that cannot take our mail, to our own addresses, to addresses that
// bounced, or beyond the rate limits per address and per ticket. This is what keeps
// replydesk out of mail loops. It returns the address to reply to, or "" and why not.
func (r *Responder) autoReplyTo(f threads.Filed) (to, why string) {
	p := r.cfg.Policy
	if !f.Live || f.Auto {
		return "", "automatic or imported mail"
	}
	to, why = Recipient(f.Message.From)
	switch {
	case to == "":
		return "", why
	case r.isOurs(to):
		return "", "our own address"
	case f.Bouncing:
		return "", "the address bounced"
	case f.RecentToSender >= p.RecentLimit || f.RecentOnTicket >= p.RecentLimit:
		return "", fmt.Sprintf("%d auto-replies in %s already", p.RecentLimit, threads.RecentWindow)
	case f.TodayToSender >= p.DayLimit || f.TodayOnTicket >= p.DayLimit:
		return "", fmt.Sprintf("%d auto-replies today already", p.DayLimit)
	}
	return to, ""
}

// Recipient checks that an address taken from a customer's mail can be written to: it
// returns the address, or "" and the reason. Refused: no address, invalid UTF-8 (raw
// 8-bit bytes), control characters, anything that is not one plain address (Compose's
// rule), and non-ASCII addresses, since neither transport speaks SMTPUTF8 (RFC 6531).
func Recipient(addr string) (string, string) {
	switch {
	case addr == "":
		return "", "no sender address"
	case !utf8.ValidString(addr):
		return "", "the sender address holds raw 8-bit bytes"
	case strings.IndexFunc(addr, func(c rune) bool { return c < 0x20 || c == 0x7f }) >= 0:
		return "", "the sender address holds control characters"
	case strings.IndexFunc(addr, func(c rune) bool { return c > 0x7e }) >= 0:
		return "", "the sender address is not ASCII (sending to it needs SMTPUTF8)"
	}
	a, err := checkAddress(addr)
	if err != nil {
		return "", "the sender address is invalid"
	}
	return a, ""
}

func (r *Responder) isOurs(addr string) bool {
	local, domain, _ := strings.Cut(strings.ToLower(addr), "@")
	local, _, _ = strings.Cut(local, "+")
	for _, a := range append(append([]string{}, r.cfg.OurAddresses...), r.cfg.From) {
		if a != "" && strings.EqualFold(a, local+"@"+domain) {
			return true
		}
	}
	for _, a := range r.cfg.Agents {
		if strings.EqualFold(a.Email, addr) {
			return true
		}
	}
	return false
}

func (r *Responder) agentsFor(t threads.TicketInfo) []Agent {
	var out []Agent
	for _, a := range r.cfg.Agents {
		if t.Assignee != "" {
			if strings.EqualFold(a.Email, t.Assignee) {
				return []Agent{a}
			}
			continue
		}
		if len(a.Queues) == 0 || contains(a.Queues, t.Queue) {
			out = append(out, a)
		}
	}
	return out
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// supportAddress is the address we write from: [outbound] from, else the one the
// customer wrote to.
func (r *Responder) supportAddress(t threads.TicketInfo) string {
	if r.cfg.From != "" {
		return r.cfg.From
	}
	return t.RecipientTo
}

// tokenAddress is support+<token>@domain.
func tokenAddress(support, token string) string {
	local, domain, _ := strings.Cut(support, "@")
	return local + "+" + token + "@" + domain
}

// data is the template data of one mail. This is the boundary where a customer's values
// enter our mail: each one-line value (names, addresses, subjects) passes Display; the
// text is multi-line by design and only ever shown quoted or escaped by the templates.
func (r *Responder) data(f threads.Filed, earlierTickets []threads.Ticket, lang, token string) templates.Data {
	t := f.Ticket
	name := customerName(f.Message)
	if name == "" {
		name = Display(f.Message.From, MaxNameRunes)
	}
	var earlier []templates.EarlierTicket
	for _, e := range earlierTickets {
		earlier = append(earlier, templates.EarlierTicket{Number: e.ID, Subject: Display(e.Subject, MaxSubjectRunes), Status: e.Status})
	}
	response := r.cfg.SLA[t.Category]
	if response == 0 {
		response = threads.DefaultSLA[t.Category]
	}
	return templates.Data{
		Helpdesk: r.cfg.Helpdesk, Ticket: t.ID, Subject: Display(t.Subject, MaxSubjectRunes),
		CustomerName: name, Customer: Display(f.Message.From, 320),
		Category: templates.CategoryName(lang, t.Category), ResponseTime: templates.Duration(lang, response),
		Text: f.Message.Text, Earlier: earlier, Commands: agentCommands,
		RefLine: threads.RefLine(r.cfg.Helpdesk, t.ID, token),
	}
}

// mail renders template name in lang, composes it as a reply to the filed message (kind
// holds AutoReply or AutoGenerated and the Message-ID) and signs it.
func (r *Responder) mail(f threads.Filed, earlier []threads.Ticket, name, lang string, to []*mail.Address, token string, kind Draft) (threads.Composed, error) {
	t := f.Ticket
	rendered, err := r.tpl.Render(name, lang, r.data(f, earlier, lang, token))
	if err != nil {
		return threads.Composed{}, err
	}
	support := r.supportAddress(t)
	d := kind
	d.From, d.FromName, d.To, d.ReplyTo = support, r.cfg.Helpdesk, to, tokenAddress(support, token)
	d.Subject, d.InReplyTo, d.References, d.Language = rendered.Subject, f.Message.MessageID, f.Message.References, lang
	d.ThreadTopic, d.ThreadSeed, d.ThreadStart = t.Subject, fmt.Sprint(t.ID), t.Created
	d.Text, d.HTML = rendered.Text, rendered.HTML
	raw, _, err := Compose(d)
	if err == nil {
		raw, err = r.cfg.DKIM.Sign(raw)
	}
	if err != nil {
		return threads.Composed{}, err
	}
	return threads.Composed{Raw: raw, Subject: rendered.Subject, Text: rendered.Text}, nil
}
