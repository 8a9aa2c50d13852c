package templates

// Data is what every template may use. Fields a template does not need stay empty.
// The one-line fields that come from a customer (Subject, CustomerName, Customer,
// EarlierTicket.Subject) arrive flattened to one line and capped (mailout.Display does it
// where the Responder builds Data); Text is multi-line and is shown only through quote
// or paragraphs, or escaped by html/template.
type Data struct {
	Helpdesk     string // helpdesk name, also the subject tag
	Ticket       int64
	Subject      string // the ticket's subject, without tag
	CustomerName string // display name, or the address
	Category     string // localized category name
	ResponseTime string // localized, e.g. "24 hours"
	Text         string // the new text (notification: the customer's; agent_reply: the agent's)
	Customer     string // the customer's address (notification)
	Earlier      []EarlierTicket
	Commands     []string // agent commands (notification)
	RefLine      string   // "[Support #12] ref:r12-..." : the footer reference line
	AgentName    string   // agent_reply
	// agent_notice: what the agent is told (command_error, forged, undeliverable,
	// collision, note) and the details, one per line.
	Notice string
	Lines  []string
	// notification: the customer's attachments, in order; those not Attached went past
	// AttachmentLimit (e.g. "10 MB") or could not be read (Unreadable).
	Attachments     []AttachmentLine
	AttachmentLimit string
}

// AttachmentLine is one of the customer's attachments as a notification lists it.
type AttachmentLine struct {
	Name       string // one line, safe to show
	Size       string // localized, e.g. "120 KB" (Size)
	Attached   bool
	Unreadable bool // its transfer encoding was broken: not attached
}

// EarlierTicket is one of the customer's other tickets, for the notification.
type EarlierTicket struct {
	Number  int64
	Subject string
	Status  string
}
