package quote

import (
	"strings"

	"github.com/inbucket/html2text"
	"golang.org/x/net/html"
	"golang.org/x/net/html/atom"
)

// Limits that keep html2text's recursion and its "> " prefixes bounded on hostile HTML.
const (
	maxTagDepth        = 48  // deeper tags are dropped before parsing (see limitNesting)
	maxHTMLDepth       = 200 // deeper elements are flattened into their text
	maxBlockquoteDepth = 8   // deeper blockquotes are rendered as plain blocks
	maxProbeNodes      = 200 // nodes looked at to read the start of an element's text
)

// StripHTML splits an HTML-only reply. It removes the quote containers that mail clients
// mark (Gmail's gmail_quote, Apple Mail's blockquote type="cite", Thunderbird's
// moz-cite-prefix, Outlook's divRplyFwdMsg, #appendonsend and border-top header blocks,
// and others), converts the rest to text as the rest of replydesk does (html2text), and
// strips that with Strip. New, Quoted and Signature are plain text.
func StripHTML(src string) Result {
	doc := parseBounded(src)
	cut := findQuoteNodes(doc)
	var quoted, sig []string
	for _, n := range cut.remove {
		text := render(n)
		removeAndPrune(n)
		if text != "" {
			if cut.signature[n] {
				sig = append(sig, text)
			} else {
				quoted = append(quoted, text)
			}
		}
	}
	if cut.after != nil {
		quoted = append(quoted, cutAfter(cut.after))
	}
	r := Strip(render(doc))
	if cut.marker != "" {
		r.Marker = cut.marker
	}
	r.Quoted = joinNonEmpty(append([]string{r.Quoted}, quoted...))
	r.Signature = strings.TrimSpace(strings.Join(append([]string{r.Signature}, sig...), "\n"))
	return r
}

// removeAndPrune removes n, then each ancestor left without content (see pruneUp).
func removeAndPrune(n *html.Node) {
	parent := n.Parent
	parent.RemoveChild(n)
	pruneUp(parent)
}

// pruneUp removes n and its ancestors as long as they have no content, so that a bold
// element that held only the quote leaves no empty "**" behind.
func pruneUp(n *html.Node) {
	for n != nil && n.Type == html.ElementNode && n.DataAtom != atom.Body && n.DataAtom != atom.Html &&
		n.Parent != nil && empty(n) {
		parent := n.Parent
		parent.RemoveChild(n)
		n = parent
	}
}

// empty reports whether n has no children but blank text.
func empty(n *html.Node) bool {
	for c := n.FirstChild; c != nil; c = c.NextSibling {
		if c.Type != html.TextNode || !isBlank(c.Data) {
			return false
		}
	}
	return true
}

// parseBounded parses src (html.Parse fails only on a reader error, which a string
// reader never returns; the text is kept as text then) and bounds the tree.
func parseBounded(src string) *html.Node {
	doc, err := html.Parse(strings.NewReader(limitNesting(src)))
	if err != nil {
		doc = &html.Node{Type: html.DocumentNode}
		doc.AppendChild(&html.Node{Type: html.TextNode, Data: src})
	}
	bound(doc)
	return doc
}

// limitNesting drops the tags nested deeper than maxTagDepth, keeping their text.
// html.Parse takes time that grows with the square of the nesting depth (each tag checks
// the stack of open elements), so 400 KB of "<div>" would take minutes. The depth is
// counted on the tokens, as start tags minus end tags of the elements that nest (void
// elements and those whose end tag may be left out, such as p, li and td, do not count).
// src is returned unchanged when nothing is that deep.
// LimitNesting drops the tags of src nested deeper than a mail needs (their text is
// kept), so parsing it stays fast: for anyone who parses a sender's HTML.
func LimitNesting(src string) string { return limitNesting(src) }

func limitNesting(src string) string {
	z := html.NewTokenizer(strings.NewReader(src))
	var b strings.Builder
	depth, dropped, pos := 0, false, 0
	for {
		tt := z.Next()
		if tt == html.ErrorToken {
			break
		}
		raw := z.Raw()
		keep := true
		switch tt {
		case html.StartTagToken:
			if name, _ := z.TagName(); nests(name) {
				depth++
				keep = depth <= maxTagDepth
			}
		case html.EndTagToken:
			if name, _ := z.TagName(); nests(name) && depth > 0 {
				keep = depth <= maxTagDepth
				depth--
			}
		}
		if !keep && !dropped {
			dropped = true
			b.Grow(len(src))
			b.WriteString(src[:pos])
		}
		if dropped && keep {
			b.Write(raw)
		}
		pos += len(raw)
	}
	if !dropped {
		return src
	}
	b.WriteString(src[min(pos, len(src)):])
	return b.String()
}

// nests reports whether an element of that (lowercase) name opens a level that only its
// end tag closes.
func nests(name []byte) bool {
	switch atom.Lookup(name) {
	case atom.Area, atom.Base, atom.Br, atom.Col, atom.Embed, atom.Hr, atom.Img, atom.Input,
		atom.Link, atom.Meta, atom.Param, atom.Source, atom.Track, atom.Wbr, atom.Keygen,
		atom.P, atom.Li, atom.Dt, atom.Dd, atom.Option, atom.Optgroup, atom.Rb, atom.Rt,
		atom.Rtc, atom.Rp, atom.Tr, atom.Td, atom.Th, atom.Thead, atom.Tbody, atom.Tfoot,
		atom.Colgroup, atom.Html, atom.Head, atom.Body:
		return false
	}
	return true
}

// quoteNodes are the elements StripHTML takes out: remove (quote containers, signature
// containers) and after (the first element from which everything is quoted).
type quoteNodes struct {
	remove    []*html.Node
	signature map[*html.Node]bool
	after     *html.Node
	marker    string
}

// findQuoteNodes walks the document in order (without recursion) and collects the quote
// containers up to the first element after which everything is quoted.
func findQuoteNodes(doc *html.Node) quoteNodes {
	q := quoteNodes{signature: map[*html.Node]bool{}}
	for n := doc; n != nil; {
		if n.Type == html.ElementNode {
			if name := cutAfterMarker(n); name != "" {
				q.after = n
				q.note(name)
				return q
			}
			if name, isSig := containerMarker(n); name != "" && (isSig || !forwardsMessage(n)) {
				q.remove = append(q.remove, n)
				if isSig {
					q.signature[n] = true
				} else {
					q.note(name)
				}
				n = nextSkippingChildren(n)
				continue
			}
		}
		n = next(n)
	}
	return q
}

func (q *quoteNodes) note(name string) {
	if q.marker == "" {
		q.marker = name
	}
}

// containerMarker names an element that holds a quote (or, isSig, a signature) and
// nothing else; "" when it is none.
func containerMarker(n *html.Node) (name string, isSig bool) {
	class := " " + strings.ToLower(attr(n, "class")) + " "
	id := strings.TrimPrefix(strings.ToLower(attr(n, "id")), "x_")
	switch {
	case strings.Contains(class, " gmail_quote ") || strings.Contains(class, " gmail_quote_container "):
		return "gmail_quote", false
	case n.DataAtom == atom.Blockquote && strings.EqualFold(attr(n, "type"), "cite"):
		return "blockquote cite", false
	case strings.Contains(class, " moz-cite-prefix "):
		return "moz-cite-prefix", false
	case strings.Contains(class, " yahoo_quoted "):
		return "yahoo_quoted", false
	case strings.Contains(class, " protonmail_quote "):
		return "protonmail_quote", false
	case strings.Contains(class, " gmail_signature ") || strings.Contains(class, " moz-signature ") ||
		id == "signature" && n.DataAtom == atom.Div:
		return "signature", true
	}
	return "", false
}

// forwardsMessage reports whether a quote container starts with a forward marker
// ("---------- Forwarded message ---------", "Begin forwarded message:"). Such a
// container is left to the text stage, which keeps a forward sent without a word above
// it as the new text, as it does for text/plain.
func forwardsMessage(n *html.Node) bool {
	first, _, _ := strings.Cut(textStart(n), "\n")
	return markerClass(trimBlank(first)) == cFwd
}

// cutAfterMarker names an element after which (itself included) everything is quoted:
// Outlook's reply header containers; "" when it is none.
func cutAfterMarker(n *html.Node) string {
	id := strings.TrimPrefix(strings.ToLower(attr(n, "id")), "x_")
	switch id {
	case "divrplyfwdmsg", "appendonsend", "olk_src_body_section",
		"mail-editor-reference-message-container":
		return id
	case "stopspelling", "zwchr":
		if n.DataAtom == atom.Hr {
			return "hr#" + id
		}
	}
	if n.DataAtom == atom.Div || n.DataAtom == atom.P {
		style := strings.ToLower(strings.Join(strings.Fields(attr(n, "style")), ""))
		if (strings.Contains(style, "border-top:solid") || strings.Contains(style, "border-top-style:solid")) &&
			headerFamily(textStart(n))&hFrom != 0 {
			return "border-top header"
		}
	}
	return ""
}

// textStart returns the start of an element's text, a line per text node, looking at no
// more than maxProbeNodes nodes.
func textStart(n *html.Node) string {
	var b strings.Builder
	seen := 0
	for c := n.FirstChild; c != nil && seen < maxProbeNodes && b.Len() < 64; seen++ {
		if c.Type == html.TextNode && !isBlank(c.Data) {
			b.WriteString(strings.TrimSpace(c.Data))
			b.WriteByte('\n')
		}
		c = nextWithin(c, n)
	}
	return strings.TrimSpace(strings.ReplaceAll(b.String(), "\u00a0", " "))
}

// cutAfter removes n and everything after it in document order, and returns its text.
func cutAfter(n *html.Node) string {
	var chain []*html.Node // n and its ancestors below the document
	for cur := n; cur.Parent != nil; cur = cur.Parent {
		chain = append(chain, cur)
	}
	parent := n.Parent
	holder := &html.Node{Type: html.ElementNode, Data: "div", DataAtom: atom.Div}
	defer pruneUp(parent)
	for k, cur := range chain {
		start := cur.NextSibling
		if k == 0 {
			start = cur
		}
		var moved []*html.Node
		for s := start; s != nil; s = s.NextSibling {
			moved = append(moved, s)
		}
		for _, s := range moved {
			s.Parent.RemoveChild(s)
			holder.AppendChild(s)
		}
	}
	return render(holder)
}

// bound flattens what html2text could not render in bounded time and memory: elements
// nested deeper than maxHTMLDepth become their text, and blockquotes nested deeper than
// maxBlockquoteDepth become divs. It walks the tree in document order, keeping only the
// blockquote counts along the current path.
func bound(doc *html.Node) {
	quotes := []int{0} // blockquotes above each level of the current path
	depth := 0
	for n := doc; n != nil; {
		descend := n.FirstChild != nil
		if n != doc && n.Type == html.ElementNode {
			q := quotes[depth-1]
			if n.DataAtom == atom.Blockquote {
				if q++; q > maxBlockquoteDepth {
					n.DataAtom, n.Data = atom.Div, "div"
				}
			}
			quotes = append(quotes[:depth], q)
			if depth >= maxHTMLDepth {
				flatten(n)
				descend = false
			}
		} else {
			quotes = append(quotes[:depth], quotes[max(depth-1, 0)])
		}
		if descend {
			n, depth = n.FirstChild, depth+1
			continue
		}
		for n != nil && n != doc && n.NextSibling == nil {
			n, depth = n.Parent, depth-1
		}
		if n == nil || n == doc {
			break
		}
		n = n.NextSibling
	}
}

// flatten replaces the children of n by one text node with their text.
func flatten(n *html.Node) {
	var b strings.Builder
	for c := n.FirstChild; c != nil; c = nextWithin(c, n) {
		if c.Type == html.TextNode {
			b.WriteString(c.Data)
			b.WriteByte(' ')
		}
	}
	for n.FirstChild != nil {
		n.RemoveChild(n.FirstChild)
	}
	n.AppendChild(&html.Node{Type: html.TextNode, Data: b.String()})
}

// render converts a node to text as replydesk does for HTML-only mail.
func render(n *html.Node) string {
	text, err := html2text.FromHTMLNode(n)
	if err != nil {
		return ""
	}
	return text
}

// next returns the node after n in document order.
func next(n *html.Node) *html.Node {
	if n.FirstChild != nil {
		return n.FirstChild
	}
	return nextSkippingChildren(n)
}

// nextSkippingChildren returns the node after n and its descendants in document order.
func nextSkippingChildren(n *html.Node) *html.Node {
	for ; n != nil; n = n.Parent {
		if n.NextSibling != nil {
			return n.NextSibling
		}
	}
	return nil
}

// nextWithin is next, staying among the descendants of root.
func nextWithin(n, root *html.Node) *html.Node {
	if n.FirstChild != nil {
		return n.FirstChild
	}
	for ; n != nil && n != root; n = n.Parent {
		if n.NextSibling != nil {
			return n.NextSibling
		}
	}
	return nil
}

func attr(n *html.Node, key string) string {
	for _, a := range n.Attr {
		if a.Key == key {
			return a.Val
		}
	}
	return ""
}

func joinNonEmpty(parts []string) string {
	var kept []string
	for _, p := range parts {
		if p = strings.TrimSpace(p); p != "" {
			kept = append(kept, p)
		}
	}
	return strings.Join(kept, "\n\n")
}
