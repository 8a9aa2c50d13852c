package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
)

var backupCommand = command{
	summary: "write a consistent copy of the database to FILE, also while serve runs",
	usage:   "FILE",
	setup: func(fs *flag.FlagSet) func(context.Context, *cmdEnv, []string) error {
		return func(ctx context.Context, env *cmdEnv, args []string) error {
			if len(args) != 1 {
				return errors.New("usage: replydesk backup FILE (FILE must not exist)")
			}
			store, err := openReader(env)
			if err != nil {
				return err
			}
			defer store.Close()
			size, err := store.Backup(ctx, args[0])
			if err != nil {
				return err
			}
			fmt.Fprintf(env.stdout, "%s: %d bytes\n", args[0], size)
			return nil
		}
	},
}
