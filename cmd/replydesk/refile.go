package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"strconv"
)

var refileCommand = command{
	summary: "file again mail that was set aside (status lists it), once the cause is fixed",
	usage:   "ID|all",
	setup: func(fs *flag.FlagSet) func(context.Context, *cmdEnv, []string) error {
		return func(ctx context.Context, env *cmdEnv, args []string) error {
			if len(args) != 1 {
				return errors.New("usage: replydesk refile ID|all (the message numbers status lists as set aside)")
			}
			var id int64
			if args[0] != "all" {
				n, err := strconv.ParseInt(args[0], 10, 64)
				if err != nil || n <= 0 {
					return fmt.Errorf("%q is not a message number (or all)", args[0])
				}
				id = n
			}
			store, err := openFilingStore(env)
			if err != nil {
				return err
			}
			defer store.Close()
			defer alertOnSetAside(env, store)()
			n, err := store.Refile(ctx, id)
			if err != nil {
				return err
			}
			if n == 0 {
				return fmt.Errorf("no set-aside message %s", args[0])
			}
			// File them now, as ingest does; a running serve would too, within seconds.
			if _, err := store.ProcessPending(ctx); err != nil {
				return fmt.Errorf("refiled %d, but filing failed (serve will retry): %w", n, err)
			}
			st, err := store.Status(ctx)
			if err != nil {
				return err
			}
			fmt.Fprintf(env.stdout, "%d put back for filing; %d set aside now\n", n, st.SetAsideCount)
			return nil
		}
	},
}
