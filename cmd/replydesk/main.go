// Command replydesk is an email-first helpdesk: it receives the mail sent to a support
// address, files it into threaded tickets, and lets agents work from their mail client.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
)

// command is one subcommand: its one-line summary, its flags and what it does.
type command struct {
	summary string
	usage   string // arguments after the flags
	setup   func(fs *flag.FlagSet) func(ctx context.Context, env *cmdEnv, args []string) error
}

// cmdEnv is what every command gets: its configuration and where to write.
type cmdEnv struct {
	cfg    fileConfig
	source string // where cfg came from
	log    *slog.Logger
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
}

// exitError carries a specific exit status (the pipe transport's 75, for instance).
type exitError struct {
	code int
	err  error
}

func (e exitError) Error() string { return e.err.Error() }
func (e exitError) Unwrap() error { return e.err }

var commands = map[string]command{
	"serve":        serveCommand,
	"ingest":       ingestCommand,
	"tickets":      ticketsCommand,
	"show":         showCommand,
	"export":       exportCommand,
	"status":       statusCommand,
	"check-config": checkConfigCommand,
	"set":          setCommand,
	"refile":       refileCommand,
	"backup":       backupCommand,
	"reply":        replyCommand,
	"note":         noteCommand,
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// run is main without the process: tests call it directly.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	global := flag.NewFlagSet("replydesk", flag.ContinueOnError)
	global.SetOutput(stderr)
	configPath := global.String("config", "", "configuration file (default: $REPLYDESK_CONFIG, ./replydesk.toml, else embedded defaults)")
	global.Usage = func() { usage(stderr) }
	if err := global.Parse(args); err != nil {
		return 2
	}
	if global.NArg() == 0 {
		usage(stderr)
		return 2
	}
	name, rest := global.Arg(0), global.Args()[1:]
	cmd, ok := commands[name]
	if !ok {
		if name == "help" {
			usage(stdout)
			return 0
		}
		fmt.Fprintf(stderr, "replydesk: unknown command %q\n\n", name)
		usage(stderr)
		return 2
	}
	fs := flag.NewFlagSet("replydesk "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(configPath, "config", *configPath, "configuration file")
	runCmd := cmd.setup(fs)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: replydesk %s [flags] %s\n\n%s\n\nflags:\n", name, cmd.usage, cmd.summary)
		fs.PrintDefaults()
	}
	positional, err := parseInterleaved(fs, rest)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	env := &cmdEnv{log: newLogger(stderr), stdin: stdin, stdout: stdout, stderr: stderr}
	if name != "check-config" {
		var err error
		env.cfg, env.source, err = loadConfig(*configPath)
		if err != nil {
			fmt.Fprintf(stderr, "replydesk: %v\n", err)
			return exitConfig
		}
	} else {
		env.source = *configPath
	}
	if err := runCmd(ctx, env, positional); err != nil {
		fmt.Fprintf(stderr, "replydesk %s: %v\n", name, err)
		var ee exitError
		if errors.As(err, &ee) {
			return ee.code
		}
		return 1
	}
	return 0
}

// parseInterleaved accepts flags before and after positional arguments, as SPEC §7
// writes them ("show N -json"); everything after "--" is positional.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var positional []string
	for {
		before := len(args)
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return positional, nil
		}
		if len(rest) < before && args[before-len(rest)-1] == "--" {
			return append(positional, rest...), nil
		}
		positional = append(positional, rest[0])
		args = rest[1:]
	}
}

// Exit statuses from sysexits.h, which MTAs understand.
const (
	exitDataErr  = 65 // EX_DATAERR: the message itself is bad; the MTA bounces it
	exitTempFail = 75 // EX_TEMPFAIL: try again later
	exitConfig   = 78 // EX_CONFIG
)

func usage(w io.Writer) {
	fmt.Fprint(w, `replydesk: an email-first helpdesk.

usage: replydesk [-config FILE] COMMAND [flags] [args]

Without -config, $REPLYDESK_CONFIG names the file; else ./replydesk.toml if present;
else the embedded defaults (data in ./replydesk-data, SMTP on 127.0.0.1:2525,
address support@localhost). -config is accepted after the command name too.
Logs go to stderr; REPLYDESK_LOG=debug|info|warn|error sets their level (default info).

commands:
`)
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-13s %s\n", n, commands[n].summary)
	}
	fmt.Fprint(w, "\nRun 'replydesk COMMAND -h' for a command's flags.\n")
}

func newLogger(w io.Writer) *slog.Logger {
	level := slog.LevelInfo
	switch strings.ToLower(os.Getenv("REPLYDESK_LOG")) {
	case "debug":
		level = slog.LevelDebug
	case "warn":
		level = slog.LevelWarn
	case "error":
		level = slog.LevelError
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level}))
}
