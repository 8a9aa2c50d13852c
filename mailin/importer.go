package mailin

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/mail"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// ErrTooLarge and ErrEmpty are ReadMessage's refusals of the message itself (as
// opposed to a failure to read it).
var (
	ErrTooLarge = errors.New("message too large")
	ErrEmpty    = errors.New("empty message")
)

// ReadMessage reads one whole message (the pipe transport), refusing more than max bytes.
func ReadMessage(r io.Reader, max int64) ([]byte, error) {
	raw, err := io.ReadAll(io.LimitReader(r, max+1))
	if err != nil {
		return nil, fmt.Errorf("read message: %w", err)
	}
	if int64(len(raw)) > max {
		return nil, fmt.Errorf("%w: over %d bytes", ErrTooLarge, max)
	}
	if len(raw) == 0 {
		return nil, ErrEmpty
	}
	return raw, nil
}

// ImportItem is one message found by ScanImport: where its bytes are, its Date, and
// the ids that order it among the others.
type ImportItem struct {
	File   string
	Offset int64
	Length int64
	Date   time.Time

	id      string   // its Message-ID, normalised by threadID
	parents []string // the ids it names in In-Reply-To and References
}

func (it ImportItem) String() string {
	if it.Offset == 0 {
		return it.File
	}
	return fmt.Sprintf("%s@%d", it.File, it.Offset)
}

// ScanImport finds the messages in the named files and folders (SPEC §2): a folder with
// cur/ and new/ is a maildir, any other folder is searched for message files; a file that
// starts with "From " and holds several messages is an mbox, else one message. Items come
// back in Date order (file order for equal dates), so a backfill threads as live mail
// would, except that a message always comes after the messages it replies to (a sender's
// clock can be hours off, and a reply filed before its parent can start a ticket of its
// own). Files that are not mail are skipped and reported in skipped.
func ScanImport(paths []string, max int64) (items []ImportItem, skipped []string, err error) {
	for _, p := range paths {
		fi, err := os.Stat(p)
		if err != nil {
			return nil, nil, fmt.Errorf("import: %w", err)
		}
		var files []string
		switch {
		case !fi.IsDir():
			files = []string{p}
		case isMaildir(p):
			files, err = maildirFiles(p)
		default:
			files, err = folderFiles(p)
		}
		if err != nil {
			return nil, nil, fmt.Errorf("import %s: %w", p, err)
		}
		for _, f := range files {
			found, err := scanFile(f, max)
			if err != nil {
				skipped = append(skipped, fmt.Sprintf("%s: %v", f, err))
				continue
			}
			items = append(items, found...)
		}
	}
	sort.SliceStable(items, func(i, j int) bool { return items[i].Date.Before(items[j].Date) })
	return parentsFirst(items), skipped, nil
}

// parentsFirst keeps the order of items, except that each message is moved after the
// messages of the import it names as parents (a depth-first walk; a cycle of forged
// references is broken where it is found).
func parentsFirst(items []ImportItem) []ImportItem {
	byID := make(map[string]int, len(items))
	for i, it := range items {
		if _, dup := byID[it.id]; it.id != "" && !dup {
			byID[it.id] = i
		}
	}
	const (
		unseen = iota
		visiting
		done
	)
	state := make([]byte, len(items))
	out := make([]ImportItem, 0, len(items))
	type frame struct{ item, next int }
	for root := range items {
		if state[root] != unseen {
			continue
		}
		stack := []frame{{root, 0}}
		state[root] = visiting
		for len(stack) > 0 {
			top := &stack[len(stack)-1]
			it := items[top.item]
			if top.next < len(it.parents) {
				p, ok := byID[it.parents[top.next]]
				top.next++
				if ok && state[p] == unseen {
					state[p] = visiting
					stack = append(stack, frame{p, 0})
				}
				continue
			}
			state[top.item] = done
			out = append(out, it)
			stack = stack[:len(stack)-1]
		}
	}
	return out
}

func isMaildir(dir string) bool {
	for _, sub := range []string{"cur", "new"} {
		if fi, err := os.Stat(filepath.Join(dir, sub)); err != nil || !fi.IsDir() {
			return false
		}
	}
	return true
}

func maildirFiles(dir string) ([]string, error) {
	var files []string
	for _, sub := range []string{"cur", "new"} {
		entries, err := os.ReadDir(filepath.Join(dir, sub))
		if err != nil {
			return nil, err
		}
		for _, e := range entries {
			if e.Type().IsRegular() && !strings.HasPrefix(e.Name(), ".") {
				files = append(files, filepath.Join(dir, sub, e.Name()))
			}
		}
	}
	return files, nil
}

func folderFiles(dir string) ([]string, error) {
	var files []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if strings.HasPrefix(d.Name(), ".") && path != dir {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if d.Type().IsRegular() {
			files = append(files, path)
		}
		return nil
	})
	return files, err
}

// scanFile lists the messages of one file: one, or several for an mbox.
func scanFile(path string, max int64) ([]ImportItem, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if !looksLikeMail(data) {
		return nil, errors.New("not a mail message")
	}
	fi, _ := os.Stat(path)
	spans := [][2]int{{0, len(data)}}
	if bytes.HasPrefix(data, []byte("From ")) {
		spans = mboxSpans(data)
	}
	var items []ImportItem
	for _, sp := range spans {
		if int64(sp[1]-sp[0]) > max {
			return nil, fmt.Errorf("%w (%d bytes at offset %d)", ErrTooLarge, sp[1]-sp[0], sp[0])
		}
		it := ImportItem{File: path, Offset: int64(sp[0]), Length: int64(sp[1] - sp[0])}
		it.readHeader(data[sp[0]:sp[1]], fi.ModTime())
		items = append(items, it)
	}
	return items, nil
}

// looksLikeMail: the first line is an mbox separator or a header field such as
// "Received:" or "From:".
func looksLikeMail(data []byte) bool {
	line, _, _ := bytes.Cut(data, []byte("\n"))
	if bytes.HasPrefix(line, []byte("From ")) {
		return true
	}
	name, _, ok := bytes.Cut(line, []byte(":"))
	if !ok || len(name) == 0 {
		return false
	}
	for _, c := range name {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_'
		if !ok {
			return false // real header names are words; this is JSON, a README, ...
		}
	}
	return true
}

// mboxSpans splits an mbox at "From " lines that start the file or follow an empty line;
// each message keeps its own "From " line, which the parser skips.
func mboxSpans(data []byte) [][2]int {
	var starts []int
	pos := 0
	prevEmpty := true
	for pos < len(data) {
		end := bytes.IndexByte(data[pos:], '\n')
		lineEnd := len(data)
		if end >= 0 {
			lineEnd = pos + end + 1
		}
		line := data[pos:lineEnd]
		if prevEmpty && bytes.HasPrefix(line, []byte("From ")) {
			starts = append(starts, pos)
		}
		prevEmpty = len(bytes.TrimRight(line, "\r\n")) == 0
		pos = lineEnd
	}
	spans := make([][2]int, len(starts))
	for i, s := range starts {
		e := len(data)
		if i+1 < len(starts) {
			e = starts[i+1]
		}
		spans[i] = [2]int{s, e}
	}
	return spans
}

// readHeader reads Date, Message-ID and the parents cheaply; mail without a readable
// Date sorts by fallback.
func (it *ImportItem) readHeader(raw []byte, fallback time.Time) {
	it.Date = fallback
	if bytes.HasPrefix(raw, []byte("From ")) {
		if i := bytes.IndexByte(raw, '\n'); i >= 0 {
			raw = raw[i+1:]
		}
	}
	msg, err := mail.ReadMessage(bufio.NewReader(bytes.NewReader(raw)))
	if err != nil {
		return
	}
	if d, err := msg.Header.Date(); err == nil {
		it.Date = d
	}
	if ids := threadIDs(msg.Header.Get("Message-Id")); len(ids) > 0 {
		it.id = ids[0]
	}
	it.parents = append(threadIDs(msg.Header.Get("In-Reply-To")), threadIDs(msg.Header.Get("References"))...)
}

// threadIDs lists the <ids> in a header value, without brackets and whitespace,
// lower-cased: enough to order an import (threads does the real matching).
func threadIDs(v string) []string {
	var out []string
	for {
		i := strings.IndexByte(v, '<')
		if i < 0 {
			return out
		}
		j := strings.IndexByte(v[i:], '>')
		if j < 0 {
			return out
		}
		id := strings.ToLower(strings.Join(strings.Fields(v[i+1:i+j]), ""))
		if id != "" {
			out = append(out, id)
		}
		v = v[i+j+1:]
	}
}

// ImportSummary counts what an import did.
type ImportSummary struct {
	Stored     int
	Duplicates int
	Skipped    int // files that are not mail, or too large
}

// Import accepts the items in order. live says whether the messages are answered like new
// mail (`ingest -notify`) or only filed. progress, when set, is called after each one.
func Import(ctx context.Context, acc Acceptor, items []ImportItem, live bool, progress func()) (ImportSummary, error) {
	var sum ImportSummary
	for _, it := range items {
		raw, err := readItem(it)
		if err != nil {
			return sum, fmt.Errorf("import %s: %w", it, err)
		}
		env := Envelope{Path: PathImport, Received: time.Now(), Live: live}
		rc, err := acc.Accept(ctx, env, raw)
		if err != nil {
			return sum, fmt.Errorf("import %s: %w", it, err)
		}
		if rc.Duplicate {
			sum.Duplicates++
		} else {
			sum.Stored++
		}
		if progress != nil {
			progress()
		}
	}
	return sum, nil
}

func readItem(it ImportItem) ([]byte, error) {
	f, err := os.Open(it.File)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	buf := make([]byte, it.Length)
	if _, err := f.ReadAt(buf, it.Offset); err != nil && !(errors.Is(err, io.EOF) && it.Length == 0) {
		return nil, err
	}
	return buf, nil
}
