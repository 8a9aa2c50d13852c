// Command replydesk-load sends what a helpdesk receives and measures how it is handled.
//
// It sends N messages of S bytes over C parallel SMTP (or LMTP) sessions and prints
// messages/s and the latency from DATA to the final reply. With -customers, every new
// message comes from its own customer, and -replies of them answer an earlier message of
// the run (In-Reply-To/References, from that message's customer). -rate paces the load.
// With -capture, it also runs the smarthost serve delivers to, and measures what the
// customer sees: from the start of the SMTP transaction to the confirmation handed to the
// transport, and when the last confirmation and notification arrived.
//
//	replydesk-load -addr 127.0.0.1:2525 -n 20000 -customers -replies 0.3 -capture 127.0.0.1:2626 -agents
//	replydesk-load -sign-bound   # RSA-2048 signatures/s on all cores: the DKIM bound
//
// See bench/realistic.sh for how the README's figures are made.
package main

import (
	"flag"
	"fmt"
	"os"
	"time"
)

type options struct {
	addr      string
	n, size   int
	sessions  int
	reuse     bool
	lmtp      bool
	to        string
	customers bool
	replies   float64
	rate      float64
	capture   string
	agents    bool
	wait      time.Duration
	agentRate float64 // share of notifications answered as an agent
	agent     string
}

func main() {
	var o options
	flag.StringVar(&o.addr, "addr", "127.0.0.1:2525", "server address")
	flag.IntVar(&o.n, "n", 20000, "messages to send")
	flag.IntVar(&o.size, "s", 4096, "message size in bytes")
	flag.IntVar(&o.sessions, "c", 10, "parallel sessions")
	flag.BoolVar(&o.reuse, "reuse", false, "send every message of a session over one connection (default: a new connection per message)")
	flag.BoolVar(&o.lmtp, "lmtp", false, "speak LMTP instead of SMTP")
	flag.StringVar(&o.to, "to", "support@localhost", "recipient")
	flag.BoolVar(&o.customers, "customers", false, "every new message from its own customer (default: all from load@example.test)")
	flag.Float64Var(&o.replies, "replies", 0, "share of messages that reply to an earlier message of the run (with -customers)")
	flag.Float64Var(&o.rate, "rate", 0, "messages per second in all (0: as fast as the server answers)")
	flag.StringVar(&o.capture, "capture", "", "listen here as the smarthost serve delivers to, and measure confirmations and notifications")
	flag.BoolVar(&o.agents, "agents", false, "with -capture: agents are configured, expect one notification per message")
	flag.DurationVar(&o.wait, "wait", 5*time.Minute, "with -capture: how long to wait for the last mail after the load")
	flag.Float64Var(&o.agentRate, "agent-replies", 0, "with -capture: share of notifications answered by -agent through their Reply-To; measures agent reply -> customer latency")
	flag.StringVar(&o.agent, "agent", "ana@example.test", "the agent who answers (an [[agent]] of serve)")
	signBound := flag.Bool("sign-bound", false, "measure RSA-2048 signatures per second on all cores and exit")
	flag.Parse()
	var err error
	if *signBound {
		err = measureSignBound(3 * time.Second)
	} else {
		err = run(o)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "replydesk-load:", err)
		os.Exit(1)
	}
}
