package quote_test

import (
	"fmt"

	"github.com/replydesk/replydesk/quote"
)

func ExampleStrip() {
	r := quote.Strip(`#status pending

Hi Carla, the refund is on its way.

-- 
Ana (Acme Support)

On Mon, 3 Mar 2025 at 10:12, Acme Support <support@acme.test> wrote:
> Please cancel the second invoice.
`)
	fmt.Printf("New:\n%s\n\nSignature: %q\n\nQuoted:\n%s\n\nMarker: %s\n", r.New, r.Signature, r.Quoted, r.Marker)
	// Output:
	// New:
	// #status pending
	//
	// Hi Carla, the refund is on its way.
	//
	// Signature: "-- \nAna (Acme Support)"
	//
	// Quoted:
	// On Mon, 3 Mar 2025 at 10:12, Acme Support <support@acme.test> wrote:
	// > Please cancel the second invoice.
	//
	// Marker: attribution
}

func ExampleStripHTML() {
	r := quote.StripHTML(`<div dir="ltr">Thanks, it works now.</div><br>` +
		`<div class="gmail_quote"><div class="gmail_attr">On Mon, Mar 3, 2025 at 10:12 AM ` +
		`Acme Support &lt;support@acme.test&gt; wrote:</div>` +
		`<blockquote class="gmail_quote">Please restart the router.</blockquote></div>`)
	fmt.Printf("New: %s\nMarker: %s\n", r.New, r.Marker)
	// Output:
	// New: Thanks, it works now.
	// Marker: gmail_quote
}
