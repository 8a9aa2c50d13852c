package threads

import (
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// routing is where a message goes and why.
type routing struct {
	ticket    int64  // 0: a new ticket
	matchedBy string // token, headers, subject, new
	flags     []string
	notes     []string
	follows   int64     // a new ticket that follows up this resolved one
	agent     string    // the agent, when an agent token, the From address and the MTA's checks agree
	alert     *agentAct // an agent token used by someone it does not pass for: whom to tell
	dupKind   string    // a duplicate: the kind of the copy filed first
}

func (r *routing) note(format string, a ...any) { r.notes = append(r.notes, fmt.Sprintf(format, a...)) }

// duplicate: the message is another copy of one already filed.
func (r *routing) duplicate() bool {
	for _, f := range r.flags {
		if f == "duplicate" {
			return true
		}
	}
	return false
}

// route decides the ticket of a message (SPEC §3): the first rule that matches wins —
// reply token, reply headers, subject tag (only for people who take part), else new.
// Where signals disagree, the winner is kept and the disagreement noted.
func (s *Store) route(tx *sql.Tx, m *pending) (routing, error) {
	p := m.parsed
	var r routing
	if p.MessageID != "" {
		// The same message again (a copy to another of our addresses): same ticket. Only
		// from the same sender: a Message-ID is no secret, and reusing one must not let
		// anyone into someone else's ticket.
		var t int64
		var sender, kind string
		err := tx.Stmt(s.sql.messageIDSender).QueryRow(p.MessageID).Scan(&t, &sender, &kind)
		switch {
		case errors.Is(err, sql.ErrNoRows):
		case err != nil:
			return r, err
		case sameAddress(sender, p.From):
			return routing{ticket: t, matchedBy: "headers", flags: []string{"duplicate"}, dupKind: kind}, nil
		default:
			r.note("conflict: reuses the Message-ID of a message from %s in #%d; not treated as the same message", orUnknown(sender), t)
		}
	}
	tokTicket, err := s.tokenTicket(tx, m, &r)
	if err != nil {
		return r, err
	}
	hdrTicket, err := s.headerTicket(tx, p, &r)
	if err != nil {
		return r, err
	}
	switch {
	case tokTicket != 0:
		r.ticket, r.matchedBy = tokTicket, "token"
		if hdrTicket != 0 && hdrTicket != tokTicket {
			r.note("conflict: the reply token names #%d, the reply headers #%d; filed by the token", tokTicket, hdrTicket)
			if r.agent != "" {
				// An agent's token replayed onto another conversation: never relayed.
				r.flags = append(r.flags, "agent_check_failed")
				r.note("agent_check_failed: the agent token names #%d, but the mail answers #%d", tokTicket, hdrTicket)
				r.alert = &agentAct{notice: "forged", noticeTo: []string{r.agent},
					lines: []string{fmt.Sprintf("the reply address of ticket #%d was used on a reply to ticket #%d's mail", tokTicket, hdrTicket)}}
				r.agent = ""
			}
		}
	case hdrTicket != 0:
		r.ticket, r.matchedBy = hdrTicket, "headers"
		if ok, err := s.takesPart(tx, hdrTicket, p.From); err != nil {
			return r, err
		} else if !ok {
			r.note("conflict: %s does not take part in #%d but replied to its mail; filed by the reply headers", orUnknown(p.From), hdrTicket)
		}
	default:
		if err := s.routeBySubject(tx, p, &r); err != nil {
			return r, err
		}
	}
	return r, s.applyReopenWindow(tx, m, &r)
}

func orUnknown(s string) string {
	if s == "" {
		return "an unknown sender"
	}
	return s
}

// tokenTicket checks reply tokens in the recipient addresses, then in the body's
// reference line; the first valid one naming an existing ticket wins.
func (s *Store) tokenTicket(tx *sql.Tx, m *pending, r *routing) (int64, error) {
	p := m.parsed
	addrs := append(append(append([]string{}, m.rcpts...), p.To...), p.Cc...)
	for _, cand := range TokenCandidates(addrs, p.Body) {
		claim, err := s.tokens.Check(cand)
		if errors.Is(err, ErrTokenSyntax) {
			continue
		}
		if err != nil {
			r.note("ignored a reply token with a bad signature (%s)", cand)
			continue
		}
		exists, err := s.ticketExists(tx, claim.Ticket)
		if err != nil {
			return 0, err
		}
		if !exists {
			r.note("ignored a reply token naming #%d, which does not exist", claim.Ticket)
			continue
		}
		if claim.Ticket, err = s.liveTicket(tx, claim.Ticket, r); err != nil {
			return 0, err
		}
		if claim.Agent != "" {
			if err := s.checkAgent(tx, m, claim, r); err != nil {
				return 0, err
			}
		}
		return claim.Ticket, nil
	}
	return 0, nil
}

// checkAgent decides whether a message with a valid agent token is that agent's reply
// (SPEC §6): its From must be the agent the token names (for a team token, an agent of
// the ticket's queue, or its assignee), and where our MTA added Authentication-Results
// from a trusted authserv-id, DKIM or DMARC must have passed for the From domain.
// Otherwise the message is flagged, never treated as an agent's, and the agent is to be
// told (r.alert).
func (s *Store) checkAgent(tx *sql.Tx, m *pending, claim TokenClaim, r *routing) error {
	p := m.parsed
	named := s.agentByHash(claim.Agent)
	who := "not the agent this reply address belongs to"
	switch {
	case named != "" && sameAddress(named, p.From):
	case claim.Agent == TeamHash && s.isAgent(p.From):
		serves, err := s.servesTicket(tx, p.From, claim.Ticket)
		if err != nil {
			return err
		}
		if serves {
			named = strings.ToLower(p.From)
			break
		}
		who = "an agent, but not of this ticket's queue nor its assignee"
		fallthrough
	default:
		r.flags = append(r.flags, "forged_agent")
		r.note("forged_agent: an agent reply token arrived from %s, %s: not treated as an agent's reply", orUnknown(p.From), who)
		r.alert = &agentAct{notice: "forged", lines: []string{fmt.Sprintf("From: %s (%s)", orUnknown(p.From), who)}}
		if named != "" {
			r.alert.noticeTo = []string{named}
		}
		return nil
	}
	if len(s.cfg.TrustedAuthservIDs) > 0 && m.path != "shell" {
		if p.Malformed {
			// An unreadable header hides the Authentication-Results our MTA added: fail
			// closed rather than skip the check.
			r.flags = append(r.flags, "agent_check_failed")
			r.note("agent_check_failed: the header is unreadable, so our MTA's checks cannot be read")
			r.alert = &agentAct{notice: "forged", noticeTo: []string{named},
				lines: []string{fmt.Sprintf("From: %s, in a mail whose header cannot be read", p.From)}}
			return nil
		}
		checked, pass, reason := AuthVerdict(p.Header.Values("Authentication-Results"), s.cfg.TrustedAuthservIDs, domainPart(p.From))
		if checked && !pass {
			r.flags = append(r.flags, "agent_check_failed")
			r.note("agent_check_failed: %s", reason)
			r.alert = &agentAct{notice: "forged", noticeTo: []string{named},
				lines: []string{fmt.Sprintf("From: %s, but %s", p.From, reason)}}
			return nil
		}
	}
	r.agent = named
	return nil
}

// servesTicket: a team token is the queue's; it passes for an agent of the ticket's
// queue (an agent without queues serves all) or for the ticket's assignee.
func (s *Store) servesTicket(tx *sql.Tx, agent string, ticket int64) (bool, error) {
	var queue, assignee string
	if err := tx.Stmt(s.sql.ticketQueue).QueryRow(ticket).Scan(&queue, &assignee); err != nil {
		return false, fmt.Errorf("queue of #%d: %w", ticket, err)
	}
	if sameAddress(assignee, agent) {
		return true, nil
	}
	queues, configured := s.cfg.AgentQueues[strings.ToLower(agent)]
	return !configured || len(queues) == 0 || slices.Contains(queues, queue), nil
}

// sameAddress compares addresses ignoring ASCII case only: strings.EqualFold would also
// fold other letters (the Kelvin sign K is k, long ſ is s), and an address that merely
// folds to an agent's is not that agent's.
func sameAddress(a, b string) bool {
	if a == "" || len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		if lowerASCII(a[i]) != lowerASCII(b[i]) {
			return false
		}
	}
	return true
}

func lowerASCII(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

func domainPart(addr string) string {
	return strings.ToLower(addr[strings.LastIndexByte(addr, '@')+1:])
}

// headerTicket finds the ticket of any message named in In-Reply-To/References (newest
// first), or of a stored message that names this one (it arrived late).
func (s *Store) headerTicket(tx *sql.Tx, p *Parsed, r *routing) (int64, error) {
	for _, id := range newestFirst(p) {
		if t, err := s.ticketOfMessageID(tx, id); err != nil || t != 0 {
			return t, err
		}
	}
	if p.MessageID == "" {
		return 0, nil
	}
	t, err := s.ticketReferencing(tx, p.MessageID)
	if err != nil || t == 0 {
		return 0, err
	}
	return s.liveTicket(tx, t, r)
}

// routeBySubject: "[<name> #<n>]" counts only for someone who takes part in ticket n; a
// stranger quoting a ticket number gets a new ticket.
func (s *Store) routeBySubject(tx *sql.Tx, p *Parsed, r *routing) error {
	r.matchedBy = "new"
	n, ok := s.subjectTag(p.Subject)
	if !ok {
		return nil
	}
	exists, err := s.ticketExists(tx, n)
	if err != nil || !exists {
		return err
	}
	if n, err = s.liveTicket(tx, n, r); err != nil {
		return err
	}
	part, err := s.takesPart(tx, n, p.From)
	if err != nil {
		return err
	}
	if part {
		r.ticket, r.matchedBy = n, "subject"
		return nil
	}
	r.note("conflict: the subject names #%d, but %s does not take part in it: opened a new ticket", n, orUnknown(p.From))
	return nil
}

// applyReopenWindow: a reply to a ticket resolved more than reopen_days ago starts a new
// ticket that names the old one.
func (s *Store) applyReopenWindow(tx *sql.Tx, m *pending, r *routing) error {
	if r.ticket == 0 {
		return nil
	}
	var status string
	var resolvedAt sql.NullInt64
	if err := tx.Stmt(s.sql.ticketLifecycle).QueryRow(r.ticket).Scan(&status, &resolvedAt); err != nil {
		return err
	}
	if status != "resolved" || !resolvedAt.Valid {
		return nil
	}
	limit := time.Duration(s.cfg.ReopenDays) * 24 * time.Hour
	if m.received.Sub(time.Unix(resolvedAt.Int64, 0)) <= limit {
		return nil
	}
	r.note("follows up #%d, resolved more than %d days before", r.ticket, s.cfg.ReopenDays)
	r.follows, r.ticket = r.ticket, 0
	return nil
}

// newestFirst orders the ids a message names from the most recent: In-Reply-To, then
// References from its end.
func newestFirst(p *Parsed) []string {
	seen := map[string]bool{}
	var out []string
	add := func(id string) {
		if !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	for _, id := range p.InReplyTo {
		add(id)
	}
	for i := len(p.References) - 1; i >= 0; i-- {
		add(p.References[i])
	}
	return out
}

func scanTicketID(row *sql.Row) (int64, error) {
	var t int64
	err := row.Scan(&t)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	return t, err
}

func (s *Store) ticketOfMessageID(tx *sql.Tx, id string) (int64, error) {
	return scanTicketID(tx.Stmt(s.sql.ticketOfMessageID).QueryRow(id))
}

func (s *Store) ticketReferencing(tx *sql.Tx, id string) (int64, error) {
	return scanTicketID(tx.Stmt(s.sql.ticketReferencing).QueryRow(id))
}

func (s *Store) ticketExists(tx *sql.Tx, id int64) (bool, error) {
	t, err := scanTicketID(tx.Stmt(s.sql.ticketExists).QueryRow(id))
	return t != 0, err
}

// takesPart: the address is a participant of the ticket, or one of our agents.
func (s *Store) takesPart(tx *sql.Tx, ticket int64, addr string) (bool, error) {
	if s.isAgent(addr) {
		return true, nil
	}
	return s.participates(tx, ticket, addr)
}

// participates: the address is a participant of the ticket (customer, cc, agent who
// acted). Unlike takesPart, a From that merely names an agent is not enough.
func (s *Store) participates(tx *sql.Tx, ticket int64, addr string) (bool, error) {
	addr = strings.ToLower(addr)
	if addr == "" {
		return false, nil
	}
	t, err := scanTicketID(tx.Stmt(s.sql.isParticipant).QueryRow(ticket, addr))
	return t != 0, err
}

// maxMergeChain bounds how far liveTicket follows merged_into (a merged ticket's target
// can itself be merged later).
const maxMergeChain = 32

// liveTicket follows merged_into from ticket to the ticket its messages live in now:
// a token or tag naming a merged ticket lands where that conversation went.
func (s *Store) liveTicket(tx *sql.Tx, ticket int64, r *routing) (int64, error) {
	start := ticket
	for range maxMergeChain {
		next, err := scanTicketID(tx.Stmt(s.sql.mergedInto).QueryRow(ticket))
		if err != nil || next == 0 {
			if err == nil && ticket != start {
				r.note("#%d was merged into #%d", start, ticket)
			}
			return ticket, err
		}
		ticket = next
	}
	return ticket, nil
}

func (s *Store) isAgent(addr string) bool {
	for _, a := range s.cfg.Agents {
		if sameAddress(a, addr) {
			return true
		}
	}
	return false
}

func (s *Store) agentByHash(h string) string {
	for _, a := range s.cfg.Agents {
		if AgentHash(a) == h {
			return a
		}
	}
	return ""
}
