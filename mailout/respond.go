package mailout

import (
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

// Respond: a new ticket gets a confirmation (or, when the message says too little to act
// on, a request for details) and a notification to the queue's agents; a customer reply
// notifies the assignee or the queue's agents. Automatic and imported mail gets nothing.
//
// Respond runs inside the filing transaction, so it returns an error only when reading
// the store fails: what a customer wrote (an address that cannot take mail, a hostile
// display name) never fails filing. A sender we cannot or may not answer gets no
// auto-reply, and a mail that cannot be composed is left out; both are logged with the
// reason.
func (r *Responder) Respond(f threads.Filed) ([]threads.OutMail, error) {
	if !f.Live || f.Auto || f.Kind != "customer" || (f.Event != "opened" && f.Event != "customer_reply") {
		return nil, nil
	}
	log := r.log().With("ticket", f.Ticket.ID, "message_id", f.Message.MessageID)
	// Decide first, compose after: most mail under load (a sender past its limit, a queue
	// without agents) causes nothing, and should cost nothing.
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
	known := f.Ticket.Language
	for _, e := range earlier {
		if known == "" && e.Language != "" {
			known = e.Language // the language of the customer's earlier tickets
		}
	}
	lang := templates.Language(f.Message.ContentLanguage, known, f.Message.Subject+"\n"+f.Message.Text, r.cfg.DefaultLanguage)
	var out []threads.OutMail
	if to != "" {
		name := "confirmation"
		if saysTooLittle(f.Message.Subject, f.Message.Text) {
			name = "ask_details"
		}
		if m, err := r.customerMail(f, earlier, name, lang, to); err != nil {
			log.Error("no auto-reply: mail not composed", "kind", name, "to", to, "err", err)
			note(f, "no confirmation sent: it could not be composed: "+err.Error())
		} else {
			out = append(out, m)
		}
	}
	for _, a := range agents {
		if m, err := r.notification(f, earlier, a, lang); err != nil {
			log.Error("notification not composed", "to", a.Email, "err", err)
		} else {
			out = append(out, m)
		}
	}
	return out, nil
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
	name := Display(f.Message.FromName, MaxNameRunes)
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

// customerMail is an automatic reply to the customer: empty envelope sender, so it can
// never bounce back into a loop, and Auto-Submitted: auto-replied.
// addr is the sender's address as Recipient passed it.
func (r *Responder) customerMail(f threads.Filed, earlier []threads.Ticket, name, lang, addr string) (threads.OutMail, error) {
	to := &mail.Address{Name: Display(f.Message.FromName, MaxNameRunes), Address: addr}
	m, err := r.mail(f, earlier, name, lang, to, f.Ticket.CustomerToken, Draft{AutoReply: true})
	m.Auto = true
	return m, err
}

// notification tells an agent about new customer text, in the helpdesk's language; the
// agent replies through their own agent token.
func (r *Responder) notification(f threads.Filed, earlier []threads.Ticket, a Agent, lang string) (threads.OutMail, error) {
	to := &mail.Address{Name: a.Name, Address: a.Email}
	m, err := r.mail(f, earlier, "notification", r.cfg.DefaultLanguage, to, r.tokens.Agent(f.Ticket.ID, a.Email), Draft{AutoGenerated: true})
	m.EnvelopeFrom, m.Language = m.From, lang // the ticket keeps the customer's language
	return m, err
}

// mail renders template name in lang for one recipient, composes it as a reply to the
// filed message (kind holds AutoReply or AutoGenerated) and signs it.
func (r *Responder) mail(f threads.Filed, earlier []threads.Ticket, name, lang string, to *mail.Address, token string, kind Draft) (threads.OutMail, error) {
	t := f.Ticket
	rendered, err := r.tpl.Render(name, lang, r.data(f, earlier, lang, token))
	if err != nil {
		return threads.OutMail{}, err
	}
	support := r.supportAddress(t)
	d := kind
	d.From, d.FromName, d.To, d.ReplyTo = support, r.cfg.Helpdesk, []*mail.Address{to}, tokenAddress(support, token)
	d.Subject, d.InReplyTo, d.References, d.Language = rendered.Subject, f.Message.MessageID, f.Message.References, lang
	d.ThreadTopic, d.ThreadSeed, d.ThreadStart = t.Subject, fmt.Sprint(t.ID), t.Created
	d.Text, d.HTML = rendered.Text, rendered.HTML
	raw, msgID, err := Compose(d)
	if err == nil {
		raw, err = r.cfg.DKIM.Sign(raw)
	}
	if err != nil {
		return threads.OutMail{}, err
	}
	return threads.OutMail{Kind: name, From: support, To: []string{to.Address}, Raw: raw, MessageID: msgID,
		Subject: rendered.Subject, Text: rendered.Text, Language: lang}, nil
}
