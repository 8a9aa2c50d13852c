package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"github.com/replydesk/replydesk/mailin"
	"github.com/replydesk/replydesk/threads"
)

var ingestCommand = command{
	summary: "store one message from stdin (pipe transport), or import .eml files, folders, maildirs and mbox files",
	usage:   "[FILE|DIR ...]",
	setup: func(fs *flag.FlagSet) func(context.Context, *cmdEnv, []string) error {
		notify := fs.Bool("notify", false, "answer imported messages like live mail (default: file them silently)")
		sender := fs.String("sender", os.Getenv("SENDER"), "pipe: envelope sender (Postfix: ${sender}; default $SENDER)")
		recipient := fs.String("recipient", os.Getenv("RECIPIENT"), "pipe: envelope recipient (Postfix: ${recipient}; default $RECIPIENT)")
		return func(ctx context.Context, env *cmdEnv, args []string) error {
			if len(args) == 0 {
				return ingestPipe(ctx, env, *sender, *recipient)
			}
			return ingestFiles(ctx, env, args, *notify)
		}
	},
}

// ingestPipe is the MTA pipe transport: exit 0 once the message is durable, 75 when the
// MTA must retry, 65 when the message itself is refused (too large, empty).
func ingestPipe(ctx context.Context, env *cmdEnv, sender, recipient string) error {
	raw, err := mailin.ReadMessage(env.stdin, env.cfg.SMTP.MaxMessageBytes)
	if err != nil {
		if errors.Is(err, mailin.ErrTooLarge) || errors.Is(err, mailin.ErrEmpty) {
			return exitError{exitDataErr, err}
		}
		return exitError{exitTempFail, err}
	}
	store, err := openFilingStore(env)
	if err != nil {
		return exitError{exitTempFail, err}
	}
	defer store.Close()
	defer alertOnSetAside(env, store)()
	env2 := mailin.Envelope{
		Path: mailin.PathPipe, Received: time.Now(), Live: true,
		MailFrom: sender, Rcpts: nonEmpty(recipient),
	}
	rc, err := store.Accept(ctx, env2, raw)
	if err != nil {
		return exitError{exitTempFail, err}
	}
	env.log.Info("message stored", "path", mailin.PathPipe, "inbox", rc.ID, "duplicate", rc.Duplicate)
	// Filing now is a courtesy when no `serve` runs; the message is already safe, so a
	// failure here does not change the exit status (serve files it later).
	if _, err := store.ProcessPending(ctx); err != nil {
		env.log.Warn("stored but not yet filed; serve will file it", "err", err)
	}
	return nil
}

func isReadError(err error) bool {
	return err != nil && !errors.Is(err, mailin.ErrTooLarge) && err.Error() != "read message: empty input"
}

func nonEmpty(s string) []string {
	if s == "" {
		return nil
	}
	return []string{s}
}

// ingestFiles imports mail (a backfill or a migration), in Date order, then files it.
func ingestFiles(ctx context.Context, env *cmdEnv, paths []string, notify bool) error {
	items, skipped, err := mailin.ScanImport(paths, env.cfg.SMTP.MaxMessageBytes)
	if err != nil {
		return err
	}
	for _, s := range skipped {
		env.log.Warn("skipped", "file", s)
	}
	store, err := openStore(env)
	if err != nil {
		return err
	}
	defer store.Close()
	if notify {
		if err := setResponder(env, store); err != nil {
			return err
		}
	}
	defer alertOnSetAside(env, store)()
	before, err := store.MalformedCount(ctx)
	if err != nil {
		return err
	}
	bar := newProgress(len(items), "storing")
	sum, err := mailin.Import(ctx, store, items, notify, func() { bar.Add(1) })
	bar.Finish()
	if err != nil {
		return err
	}
	if _, err := store.ProcessPending(ctx); err != nil {
		return fmt.Errorf("filing imported mail: %w", err)
	}
	after, err := store.MalformedCount(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(env.stdout, "%d stored, %d duplicates, %d malformed, %d skipped\n",
		sum.Stored, sum.Duplicates, after-before, len(skipped))
	return nil
}

// setResponder lets ingested live mail queue its confirmations and notifications; the
// outbox of a running (or the next) `serve` delivers them.
// openFilingStore opens the store for a command that files mail and answers it as serve
// would (ingest, refile, reply, note).
func openFilingStore(env *cmdEnv) (*threads.Store, error) {
	store, err := openStore(env)
	if err != nil {
		return nil, err
	}
	if err := setResponder(env, store); err != nil {
		store.Close()
		return nil, err
	}
	return store, nil
}

func setResponder(env *cmdEnv, store *threads.Store) error {
	r, err := env.cfg.responder(store.Tokens(), env.log)
	if err != nil {
		return err
	}
	store.SetResponder(r, nil)
	return nil
}

// alertOnSetAside lets a command that files mail tell the operator about mail it sets
// aside, as serve does; call the returned function before the store closes.
func alertOnSetAside(env *cmdEnv, store *threads.Store) (wait func()) {
	tr, err := env.cfg.transport()
	if err != nil {
		env.log.Warn("no operator alerts", "err", err)
		return func() {}
	}
	a := env.cfg.alerter(store, tr, env.log)
	return func() { a.Wait(); tr.Close() }
}

// newProgress draws a bar on stderr when it is a terminal, and nothing otherwise.
func newProgress(n int, what string) *progressbar.ProgressBar {
	if !term.IsTerminal(int(os.Stderr.Fd())) {
		return progressbar.DefaultSilent(int64(n))
	}
	return progressbar.NewOptions(n, progressbar.OptionSetWriter(os.Stderr),
		progressbar.OptionSetDescription(what), progressbar.OptionShowCount(),
		progressbar.OptionShowIts(), progressbar.OptionClearOnFinish())
}

var _ mailin.Acceptor = (*threads.Store)(nil)
