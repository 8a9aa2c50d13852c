package threads

import (
	"strings"
	"testing"
)

// TestQueryPlansUseIndexes: every lookup on the filing path goes through an index, so
// threading costs the same with a million tickets as with ten. A SCAN here is a bug.
func TestQueryPlansUseIndexes(t *testing.T) {
	t.Parallel()
	s := openTestStore(t, nil)
	for name, q := range map[string]string{
		"ticket of a Message-ID":          sqlTicketOfMessageID,
		"Message-ID and its sender":       sqlMessageIDSender,
		"ticket of a message naming it":   sqlTicketReferencing,
		"tickets of messages naming it":   sqlTicketsReferencing,
		"outbound mail by Message-ID":     sqlOutboundByMessageID,
		"participant check":               sqlIsParticipant,
		"ticket exists":                   sqlTicketExists,
		"ticket lifecycle":                sqlTicketLifecycle,
		"inbox row processed?":            sqlInboxProcessed,
		"duplicate bytes":                 sqlInboxByDigest,
		"next accepted mail to file":      sqlLoadPending,
		"overdue tickets":                 sqlOverdueTickets,
		"messages of a ticket (show)":     sqlMessagesOfTicket,
		"participants of a ticket":        sqlParticipants,
		"history of a ticket":             sqlEvents,
		"clear a bouncing address":        sqlClearBouncing,
		"mark an outbound message failed": sqlMarkOutboundFailed,
		"earlier tickets of a customer":   sqlEarlierTickets,
		"auto-replies to an address":      sqlAutoRepliesTo,
		"auto-replies on a ticket":        sqlAutoRepliesOn,
		"is the address bouncing":         sqlIsBouncing,
		"ticket for the responder":        sqlTicketForResponse,
		"due mail":                        sqlDueMail,
		"next due mail":                   sqlNextMailDue,
		"outbox row of a message":         sqlOutboxMessageStatus,
		"intents to compose":              sqlComposeDue,
		"store a composed mail":           sqlComposedMail,
		"composed mail's message row":     sqlComposedMessage,
		"composed mail's ticket language": sqlComposedLanguage,
		"merged ticket's target":          sqlMergedInto,
		"ticket holds only list mail":     sqlOnlyListMail,
		"set-aside mail":                  sqlSetAsideList,
		"refile":                          sqlRefile,
		"one received message":            sqlInboxMessage,
	} {
		n := strings.Count(q, "?")
		args := make([]any, n)
		for i := range args {
			args[i] = 1
		}
		rows, err := s.rdb.Query("EXPLAIN QUERY PLAN "+q, args...)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		var plan []string
		for rows.Next() {
			var id, parent, unused int
			var detail string
			rows.Scan(&id, &parent, &unused, &detail)
			plan = append(plan, detail)
		}
		rows.Close()
		t.Logf("%-32s %s", name, strings.Join(plan, "; "))
		for _, step := range plan {
			// A scan of a partial index holds only the rows it is for (mail waiting to be
			// composed, mail set aside): it does not grow with the store.
			if strings.HasPrefix(step, "SCAN") && step != "SCAN CONSTANT ROW" && !scansPartialIndex(step) && !scansCoroutine(step) {
				t.Errorf("%s scans: %s", name, strings.Join(plan, "; "))
			}
		}
	}
}

// partialIndexes are the indexes whose rows are exactly the work waiting (schema*.sql).
var partialIndexes = []string{"outbox_compose", "inbox_set_aside", "inbox_pending", "outbox_due"}

func scansPartialIndex(step string) bool {
	for _, ix := range partialIndexes {
		if strings.HasSuffix(step, "USING INDEX "+ix) || strings.Contains(step, "USING INDEX "+ix+" ") {
			return true
		}
	}
	return false
}

// scansCoroutine: reading the rows a subquery produced (its own plan steps are checked).
func scansCoroutine(step string) bool {
	return strings.HasPrefix(step, "SCAN (subquery-") || step == "SCAN d"
}
