package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
)

var setCommand = command{
	summary: "change a ticket: status, assignee, category, priority (recorded in its history)",
	usage:   "N field=value ...   (status=open|pending|resolved|suspended assignee=ADDRESS category=C priority=low|normal|high|urgent)",
	setup: func(fs *flag.FlagSet) func(context.Context, *cmdEnv, []string) error {
		by := fs.String("by", defaultActor(), "who makes the change, for the history")
		return func(ctx context.Context, env *cmdEnv, args []string) error {
			if len(args) < 2 {
				return errors.New("usage: replydesk set N field=value ...")
			}
			n, err := ticketNumber(args[0])
			if err != nil {
				return err
			}
			changes := map[string]string{}
			for _, a := range args[1:] {
				k, v, ok := strings.Cut(a, "=")
				if !ok {
					return fmt.Errorf("%q: write field=value", a)
				}
				changes[k] = v
			}
			store, err := openStore(env)
			if err != nil {
				return err
			}
			defer store.Close()
			if err := store.SetTicket(ctx, n, changes, *by); err != nil {
				return err
			}
			fmt.Fprintf(env.stdout, "#%d updated\n", n)
			return nil
		}
	},
}

func defaultActor() string {
	if u := os.Getenv("USER"); u != "" {
		return u + " (shell)"
	}
	return "shell"
}

func ticketNumber(s string) (int64, error) {
	n, err := strconv.ParseInt(strings.TrimPrefix(s, "#"), 10, 64)
	if err != nil || n < 1 {
		return 0, fmt.Errorf("%q is not a ticket number", s)
	}
	return n, nil
}
