package threads

import (
	"database/sql"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/replydesk/replydesk/agentcmd"
)

// agentAct is what an agent's reply does, decided in the filing transaction and handed
// to the Responder (Filed.Relay, Notice, ...).
type agentAct struct {
	relay    string   // the text for the customer
	notice   string   // agent_notice kind
	noticeTo []string // whom to tell ("" : the acting agent; see mailout)
	lines    []string
}

// agentActs carries out an agent's reply (SPEC §6) in the filing transaction: the
// #commands at the top of its new text, then either an internal note (the queue's other
// agents are told), or the relay of the rest to the customer. A reply with a bad command
// line changes nothing and relays nothing: the agent is told what was wrong.
func (s *Store) agentActs(tx *sql.Tx, f *filing) error {
	p := f.m.parsed
	res := agentcmd.Parse(p.New)
	agent := f.routing.agent
	if !res.OK() {
		f.flags = append(f.flags, "command_error")
		f.event = "agent_command_error"
		var lines []string
		for _, e := range res.Errors {
			lines = append(lines, e.Error())
			f.notes = append(f.notes, "command error: "+e.Error())
		}
		f.act = &agentAct{notice: "command_error", lines: lines}
		return nil
	}
	changes, err := s.commandChanges(res.Commands, agent)
	if err != nil {
		f.flags = append(f.flags, "command_error")
		f.event = "agent_command_error"
		f.notes = append(f.notes, "command error: "+err.Error())
		f.act = &agentAct{notice: "command_error", lines: []string{err.Error()}}
		return nil
	}
	now := f.m.received
	switch {
	case res.HasNote:
		f.kind, f.event = "note", "note"
		f.act = &agentAct{notice: "note", relay: res.Note, lines: []string{fmt.Sprintf("%s added an internal note to ticket #%d:", agent, f.ticket)}}
	case strings.TrimSpace(withoutAgentTokens(res.Reply)) != "":
		f.event = "agent_reply"
		f.act = &agentAct{relay: withoutAgentTokens(res.Reply)}
		if err := s.collision(tx, f); err != nil {
			return err
		}
		if _, err := tx.Stmt(s.sql.agentReplied).Exec(now.Unix(), agent, f.ticket); err != nil {
			return err
		}
	default:
		f.event = "agent_commands" // commands only: nothing for the customer
	}
	if len(changes) > 0 {
		return s.applyChanges(tx, f.ticket, changes, agent, now)
	}
	return nil
}

// agentTokenLine finds an agent reply token in text (ref:a12-xxxxxxxx-xxxxxxxxxxxxx, or
// in a support+a12-…@ address).
var agentTokenLine = regexp.MustCompile(`(?i)\ba[0-9]{1,18}-[a-z2-7]{8}-[a-z2-7]{13}\b`)

// withoutAgentTokens is what of an agent's reply may go to a customer: an agent token
// must never leave, since with it (and a forged From) anyone could pass for an agent. A
// quoted notification that quote stripping did not recognise (an unusual client) ends
// with its token line: the text is cut before the first line holding a token, so the
// rest of the quote goes too.
func withoutAgentTokens(text string) string {
	loc := agentTokenLine.FindStringIndex(text)
	if loc == nil {
		return text
	}
	start := strings.LastIndexByte(text[:loc[0]], '\n') + 1
	return strings.TrimRight(text[:start], " \t\r\n")
}

// commandChanges turns commands into ticket changes (validated as `set` validates them).
func (s *Store) commandChanges(cmds []agentcmd.Command, agent string) (map[string]string, error) {
	changes := map[string]string{}
	for _, c := range cmds {
		v := c.Arg
		field := c.Name
		if c.Name == agentcmd.NameAssign {
			var agents []agentcmd.Agent
			for _, a := range s.cfg.Agents {
				agents = append(agents, agentcmd.Agent{Email: a, Name: s.cfg.AgentNames[strings.ToLower(a)]})
			}
			email, err := agentcmd.ResolveAssignee(c.Arg, agent, agents)
			if err != nil {
				return nil, fmt.Errorf("line %d: #assign %s: %w", c.Line, c.Arg, err)
			}
			field, v = "assignee", strings.ToLower(email)
		}
		changes[field] = v
	}
	if len(changes) == 0 {
		return nil, nil
	}
	if err := validateChanges(changes); err != nil {
		return nil, err
	}
	return changes, nil
}

// collision: another agent answered this ticket after the notification this reply
// answers was sent (filed after it: arrival order, not Date headers). The reply still
// goes out; its author is told who answered first.
func (s *Store) collision(tx *sql.Tx, f *filing) error {
	var since int64 // the notification's message row
	for _, id := range newestFirst(f.m.parsed) {
		err := tx.Stmt(s.sql.notificationSent).QueryRow(id, f.ticket).Scan(&since)
		if err == nil {
			break
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return err
		}
	}
	if since == 0 {
		return nil
	}
	var other string
	var at int64
	err := tx.Stmt(s.sql.otherAgentReplied).QueryRow(f.ticket, since, f.routing.agent).Scan(&other, &at)
	if errors.Is(err, sql.ErrNoRows) {
		return nil
	}
	if err != nil {
		return err
	}
	f.act.notice = "collision"
	f.act.lines = []string{fmt.Sprintf("%s answered at %s", other, time.Unix(at, 0).UTC().Format("2006-01-02 15:04 MST"))}
	return nil
}

// customerThread is the conversation an agent's reply continues: the customer's latest
// message on the ticket and what it referenced.
func (s *Store) customerThread(tx *sql.Tx, ticket int64) (Thread, error) {
	var th Thread
	var refs string
	err := tx.Stmt(s.sql.customerLatest).QueryRow(ticket).Scan(&th.InReplyTo, &refs)
	if errors.Is(err, sql.ErrNoRows) {
		return th, nil
	}
	if refs != "" {
		th.References = strings.Split(refs, "\n")
	}
	return th, err
}

// copied are the people the customer copied (participants other than the customer and
// agents), who get the agent's reply too.
func (s *Store) copied(tx *sql.Tx, ticket int64) ([]string, error) {
	rows, err := tx.Stmt(s.sql.copiedParticipants).Query(ticket)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var a string
		if err := rows.Scan(&a); err != nil {
			return nil, err
		}
		if !s.isAgent(a) {
			out = append(out, a)
		}
	}
	return out, rows.Err()
}

// alertAgents: an agent token used by someone it does not pass for. The real agent is
// told, at most once an hour per ticket (a forger cannot flood them); automatic mail
// tells nobody.
func (s *Store) alertAgents(tx *sql.Tx, f *filing) error {
	if f.routing.alert == nil || f.auto || f.act != nil {
		return nil
	}
	now := f.m.received
	res, err := tx.Exec(sqlClaimAlert, fmt.Sprintf("agent_alert:%d", f.ticket), now.Unix(), now.Add(-time.Hour).Unix())
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil || n == 0 {
		return err
	}
	f.act = f.routing.alert
	return nil
}

// tellAgentUndeliverable: the mail of outbound message row (an agent's reply relayed to
// the customer) failed for good (5xx, a bounce). The agent who wrote it is told, so a
// reply never silently goes nowhere. Other mail: nothing to do.
func (s *Store) tellAgentUndeliverable(tx *sql.Tx, messageRow int64, reason string) error {
	if s.responder == nil {
		return nil
	}
	var agent string
	var ticket int64
	err := tx.QueryRow(sqlRelayAuthor, messageRow).Scan(&agent, &ticket)
	if errors.Is(err, sql.ErrNoRows) {
		return nil
	}
	if err != nil {
		return err
	}
	info, err := s.ticketInfo(tx, ticket)
	if err != nil {
		return err
	}
	ev := Filed{Event: "delivery_failed", Kind: "system", Live: true, Ticket: info, Agent: agent,
		Notice: "undeliverable", NoticeTo: []string{agent}, Lines: []string{OneLine(reason, 300)}}
	intents, err := s.responder.Decide(ev)
	if err != nil {
		return err
	}
	now := time.Now()
	for _, in := range intents {
		if err := s.queueIntent(tx, ticket, 0, now, in); err != nil {
			return err
		}
	}
	return nil // the composer finds the notice on its next poll
}
