package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"
	"time"

	"github.com/replydesk/replydesk/mailin"
	"github.com/replydesk/replydesk/mailout"
)

var serveCommand = command{
	summary: "receive mail over SMTP/LMTP and from [[imap]] mailboxes, and file it into tickets until SIGINT/SIGTERM",
	setup: func(fs *flag.FlagSet) func(context.Context, *cmdEnv, []string) error {
		listen := fs.String("listen", "", "override [smtp] listen (host:port; port 0 picks one)")
		lmtp := fs.String("lmtp", "", "override [smtp] lmtp (host:port or unix socket path)")
		cpuProfile := fs.String("cpuprofile", "", "write a CPU profile to this file until shutdown (for benchmarking)")
		return func(ctx context.Context, env *cmdEnv, args []string) error {
			if *cpuProfile != "" {
				stop, err := startCPUProfile(*cpuProfile)
				if err != nil {
					return err
				}
				defer stop()
			}
			if *listen != "" {
				env.cfg.SMTP.Listen = *listen
			}
			if *lmtp != "" {
				env.cfg.SMTP.LMTP = *lmtp
			}
			return serve(ctx, env)
		}
	},
}

// serve runs until ctx ends (the first SIGINT/SIGTERM), then drains: listeners stop at
// once, in-flight sessions get the grace period, the processor finishes its batch. A
// second signal exits at once.
func serve(ctx context.Context, env *cmdEnv) error {
	store, err := openStore(env)
	if err != nil {
		return err
	}
	defer store.Close()
	responder, err := env.cfg.responder(store.Tokens(), env.log)
	if err != nil {
		return err
	}
	transport, err := env.cfg.transport()
	if err != nil {
		return err
	}
	alerter := env.cfg.alerter(store, transport, env.log)
	defer alerter.Wait()
	outbox := mailout.NewOutbox(store, transport, env.cfg.retryPolicy(), env.log)
	outbox.SetAlert(alerter.Alert)
	composer := mailout.NewComposer(store, responder, env.cfg.Outbound.Composers, env.log)
	composer.OnComposed(outbox.Wake)
	composer.GiveWay(store.Busy)
	outbox.GiveWay(store.Busy)
	store.SetResponder(responder, composer.Wake)
	pollers, err := newPollers(env, store, alerter) // [[imap]], imap.go
	if err != nil {
		return err
	}
	srv, err := mailin.NewServer(env.cfg.mailinConfig(), store, env.log)
	if err != nil {
		return err
	}
	smtpAddr, lmtpAddr, err := srv.Start()
	if err != nil {
		return err
	}
	for path, a := range map[string]fmt.Stringer{mailin.PathSMTP: smtpAddr, mailin.PathLMTP: lmtpAddr} {
		if a != nil && a.String() != "" {
			if err := store.RecordListen(ctx, path, a.String()); err != nil {
				env.log.Warn("could not record listen address", "err", err)
			}
		}
	}
	env.log.Info("replydesk serving", "config", env.source, "data_dir", env.cfg.Helpdesk.DataDir)
	imapDone := runPollers(ctx, pollers)
	procCtx, stopProc := context.WithCancel(context.Background())
	procDone, outDone, composeDone := make(chan struct{}), make(chan struct{}), make(chan struct{})
	go func() { defer close(procDone); store.RunProcessor(procCtx, time.Second) }()
	go func() { defer close(outDone); outbox.Run(procCtx) }()
	go func() { defer close(composeDone); composer.Run(procCtx) }()

	<-ctx.Done()
	env.log.Info("shutting down", "grace", env.cfg.SMTP.ShutdownGrace.Duration)
	go exitOnSecondSignal(env)
	srv.Shutdown(context.Background())
	imapDone()
	stopProc()
	<-procDone
	<-outDone
	<-composeDone
	commits, ops := store.WriterStats()
	env.log.Info("stopped", "commits", commits, "writes", ops)
	return nil
}

func startCPUProfile(path string) (stop func(), err error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}

func exitOnSecondSignal(env *cmdEnv) {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, os.Interrupt, syscall.SIGTERM)
	<-ch
	env.log.Warn("second signal: exiting at once")
	os.Exit(1)
}
