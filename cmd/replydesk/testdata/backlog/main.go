// Command backlog stores N large customer messages in a replydesk data dir without
// filing them: the backlog TestFilingBacklogMemory hands to serve. It is a program of its
// own, built without the race detector, because storing gigabytes through a
// race-instrumented SQLite takes many minutes.
package main

import (
	"context"
	"encoding/base64"
	"flag"
	"fmt"
	"io"
	"log"
	"log/slog"
	"math/rand"
	"strings"

	"github.com/replydesk/replydesk/mailin"
	"github.com/replydesk/replydesk/threads"
)

func main() {
	dataDir := flag.String("data", "", "data dir")
	n := flag.Int("n", 200, "messages")
	size := flag.Int("size", 20<<20, "bytes per message")
	flag.Parse()
	store, err := threads.Open(threads.Config{DataDir: *dataDir, Name: "Support",
		Addresses: []threads.Address{{Email: "support@example.test", Queue: "support"}}},
		slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close()
	for i := range *n {
		env := mailin.Envelope{Path: mailin.PathSMTP, MailFrom: fmt.Sprintf("customer%d@example.com", i),
			Rcpts: []string{"support@example.test"}, Live: true}
		if _, err := store.Accept(context.Background(), env, []byte(largeMail(i, *size))); err != nil {
			log.Fatal(err)
		}
	}
}

// largeMail is a customer's message with an attachment, about size bytes in all.
func largeMail(i int, size int) string {
	raw := make([]byte, size*3/4)
	rand.New(rand.NewSource(int64(i))).Read(raw[:4096]) // the rest repeats: cheap to make
	for j := 4096; j < len(raw); j += 4096 {
		copy(raw[j:], raw[:4096])
	}
	enc := base64.StdEncoding.EncodeToString(raw)
	var b strings.Builder
	fmt.Fprintf(&b, "From: Customer %d <customer%d@example.com>\r\nTo: support@example.test\r\nSubject: logs attached %d\r\n"+
		"Message-ID: <large%d@example.com>\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"+
		"--b\r\nContent-Type: text/plain\r\n\r\nThe export fails; the log is attached.\r\n"+
		"--b\r\nContent-Type: application/octet-stream; name=log.bin\r\nContent-Transfer-Encoding: base64\r\n\r\n", i, i, i, i)
	for len(enc) > 76 {
		b.WriteString(enc[:76])
		b.WriteString("\r\n")
		enc = enc[76:]
	}
	b.WriteString(enc + "\r\n--b--\r\n")
	return b.String()
}
