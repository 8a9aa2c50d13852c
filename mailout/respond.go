package mailout

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
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

	// NotificationAttachmentCap is how many decoded bytes of the customer's attachments
	// one notification to agents carries; the rest are listed with their sizes. 0:
	// DefaultNotificationAttachmentCap (10 MiB); negative: none, all listed.
	NotificationAttachmentCap int64
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
	if cfg.NotificationAttachmentCap == 0 {
		cfg.NotificationAttachmentCap = DefaultNotificationAttachmentCap
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
	if !f.Live || f.Auto {
		return nil, nil
	}
	var out []threads.Intent
	if f.Notice != "" {
		out = append(out, r.notice(f)...)
	}
	switch {
	case f.Kind == "agent" && f.Event == "agent_reply":
		if _, why := Recipient(f.Ticket.Customer); why != "" {
			f.Notice, f.NoticeTo, f.Lines = "undeliverable", nil, []string{f.Ticket.Customer + ": " + why}
			return append(out, r.notice(f)...), nil
		}
		if f.Bouncing {
			f.Notice, f.NoticeTo, f.Lines = "undeliverable", nil, []string{f.Ticket.Customer + ": earlier mail to this address bounced; this reply was sent anyway"}
			out = append(out, r.notice(f)...)
		}
		return append(out, r.relay(f)), nil
	case f.Kind == "customer" && (f.Event == "opened" || f.Event == "customer_reply"):
		mail, err := r.decideCustomer(f)
		return append(out, mail...), err
	}
	return out, nil
}

// decideCustomer: the confirmation (or ask for details) and the agents' notification.
func (r *Responder) decideCustomer(f threads.Filed) ([]threads.Intent, error) {
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
// (the text of the message it is about is read back from the store instead, except for
// what an agent relays or is told, which is part of the decision).
type intentData struct {
	Template  string
	To, Cc    []*mail.Address
	Token     string
	MessageID string
	Ticket    threads.TicketInfo
	Message   threads.MessageInfo
	Earlier   []threads.Ticket
	AgentName string   `json:",omitempty"`
	Relay     string   `json:",omitempty"` // agent_reply: the agent's text
	Notice    string   `json:",omitempty"` // agent_notice
	Lines     []string `json:",omitempty"`
}

// relay is the agent's reply to the customer: from the support address under the
// agent's name, to the customer and the people they copied, continuing the customer's
// own thread, with the customer's reply token. Not an auto-reply: it is a person's
// answer, with our address as envelope sender so a bounce comes back and the agent is
// told.
func (r *Responder) relay(f threads.Filed) threads.Intent {
	to := []*mail.Address{{Address: f.Ticket.Customer}}
	var cc []*mail.Address
	var ccAddrs []string
	for _, a := range f.Cc {
		if addr, why := Recipient(a); why == "" && !r.isOurs(addr) {
			cc, ccAddrs = append(cc, &mail.Address{Address: addr}), append(ccAddrs, addr)
		}
	}
	in := r.intent(f, nil, "agent_reply", to, f.Ticket.CustomerToken, func(d *intentData) {
		d.Cc, d.Relay, d.AgentName = cc, f.Relay, r.agentName(f.Agent)
		d.Message.MessageID, d.Message.References = f.Thread.InReplyTo, f.Thread.References
	})
	in.Auto, in.EnvelopeFrom = false, in.From
	in.To = append(in.To, ccAddrs...)
	return in
}

// notice tells agents something about their reply or their ticket (agent_notice); nil
// when there is nobody to tell.
func (r *Responder) notice(f threads.Filed) []threads.Intent {
	who := f.NoticeTo
	switch {
	case len(who) > 0:
	case f.Notice == "note" || f.Agent == "":
		// An internal note, or a forged use of a team token: the ticket's agents.
		for _, a := range r.agentsFor(f.Ticket) {
			if !strings.EqualFold(a.Email, f.Agent) {
				who = append(who, a.Email)
			}
		}
	default:
		who = []string{f.Agent}
	}
	if len(who) == 0 {
		return nil
	}
	var to []*mail.Address
	for _, a := range who {
		to = append(to, &mail.Address{Name: r.agentName(a), Address: a})
	}
	token := r.tokens.Team(f.Ticket.ID)
	if len(who) == 1 {
		token = r.tokens.Agent(f.Ticket.ID, who[0])
	}
	return []threads.Intent{r.intent(f, nil, "agent_notice", to, token, func(d *intentData) {
		d.Notice, d.Lines = f.Notice, f.Lines
		if f.Notice == "note" {
			d.Relay = f.Relay // the note's text
		}
	})}
}

// agentName is the configured name of an agent, else the address.
func (r *Responder) agentName(addr string) string {
	for _, a := range r.cfg.Agents {
		if strings.EqualFold(a.Email, addr) && a.Name != "" {
			return a.Name
		}
	}
	return addr
}

// intent records one mail to write; its Message-ID is chosen now.
// more, when set, adds what this kind of mail needs to the snapshot.
func (r *Responder) intent(f threads.Filed, earlier []threads.Ticket, name string, to []*mail.Address, token string, more ...func(*intentData)) threads.Intent {
	support := r.supportAddress(f.Ticket)
	d := intentData{Template: name, To: to, Token: token, MessageID: newMessageID(support), Ticket: f.Ticket, Message: f.Message}
	d.Message.Text = "" // read back from the store when composing
	for _, e := range earlier {
		d.Earlier = append(d.Earlier, threads.Ticket{ID: e.ID, Subject: e.Subject, Status: e.Status, Language: e.Language})
	}
	for _, add := range more {
		add(&d)
	}
	data, err := json.Marshal(d)
	if err != nil {
		panic(err) // plain strings, numbers and times
	}
	in := threads.Intent{Kind: name, From: support, MessageID: d.MessageID, Subject: f.Ticket.Subject, Data: data}
	for _, a := range to {
		in.To = append(in.To, a.Address)
	}
	switch name {
	case "notification", "agent_notice":
		in.EnvelopeFrom = support // agents' servers may bounce to us; customers' never do
	default:
		in.Auto = true
	}
	return in
}

// Compose renders, composes and signs one decided mail. It runs outside the filing
// transaction, on the Composer's workers, and reads nothing from the store: c.Raw, when
// the Composer set it, is the raw message the mail is about, whose attachments go along
// (agent_reply: all the agent's; notification: the customer's, up to
// NotificationAttachmentCap, and a list of them all).
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
	switch d.Template {
	case "notification", "agent_notice":
		draft = Draft{AutoGenerated: true}
		renderLang = r.cfg.DefaultLanguage // agents read the helpdesk's language; the ticket keeps the customer's
	case "agent_reply":
		draft = Draft{Cc: d.Cc, FromName: d.AgentName + " (" + r.cfg.Helpdesk + ")"}
		f.Message.Text = d.Relay
	}
	if d.Template == "agent_notice" && d.Notice == "note" {
		f.Message.Text = d.Relay
	}
	draft.MessageID = d.MessageID
	var listed []templates.AttachmentLine
	if len(c.Raw) > 0 && CarriesAttachments(d.Template) {
		limit := int64(math.MaxInt64)
		if d.Template == "notification" {
			limit = r.cfg.NotificationAttachmentCap
		}
		files, list, err := readAttachments(c.Raw, limit)
		if err != nil {
			// The message was filed, so this is rare (a MIME panic): the mail goes without
			// what could not be read, rather than not at all.
			r.log().Warn("attachments not read", "ticket", c.Ticket, "outbox", c.OutboxID, "kind", c.Kind, "err", err)
		}
		for _, l := range list {
			if l.unreadable {
				r.log().Warn("attachment not readable: not attached", "ticket", c.Ticket, "outbox", c.OutboxID, "kind", c.Kind, "name", l.name)
			}
		}
		draft.Attachments = files
		if d.Template == "notification" {
			listed = attachmentLines(list, renderLang)
		}
	}
	m, err := r.mail(f, d.Earlier, d.Template, renderLang, d.To, d.Token, draft, d, listed)
	if err != nil {
		return threads.Composed{}, fmt.Errorf("%s for #%d: %w", d.Template, f.Ticket.ID, err)
	}
	m.OutboxID, m.Language = c.OutboxID, lang
	return m, nil
}

// CarriesAttachments says whether mail of this kind carries the attachments of the
// message it is about: the relayed agent reply, and the agents' notification. The
// Composer reads the raw message for these kinds only.
func CarriesAttachments(kind string) bool { return kind == "agent_reply" || kind == "notification" }

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
func (r *Responder) mail(f threads.Filed, earlier []threads.Ticket, name, lang string, to []*mail.Address, token string, kind Draft, in intentData, files []templates.AttachmentLine) (threads.Composed, error) {
	t := f.Ticket
	data := r.data(f, earlier, lang, token)
	data.AgentName, data.Notice, data.Lines = in.AgentName, in.Notice, in.Lines
	if len(files) > 0 {
		data.Attachments, data.AttachmentLimit = files, templates.Size(lang, max(r.cfg.NotificationAttachmentCap, 0))
	}
	rendered, err := r.tpl.Render(name, lang, data)
	if err != nil {
		return threads.Composed{}, err
	}
	support := r.supportAddress(t)
	d := kind
	if d.FromName == "" {
		d.FromName = r.cfg.Helpdesk
	}
	d.From, d.To, d.ReplyTo = support, to, tokenAddress(support, token)
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
