package main

import (
	"context"
	"flag"
	"fmt"
)

var checkConfigCommand = command{
	summary: "check the configuration file and print every mistake with its line",
	usage:   "[FILE]",
	setup: func(fs *flag.FlagSet) func(context.Context, *cmdEnv, []string) error {
		return func(ctx context.Context, env *cmdEnv, args []string) error {
			path := env.source
			if len(args) == 1 {
				path = args[0]
			}
			_, source, err := loadConfig(path)
			if err != nil {
				if ce, ok := err.(configErrors); ok {
					for _, e := range ce {
						fmt.Fprintln(env.stderr, e)
					}
					return exitError{exitConfig, fmt.Errorf("%d problem(s) in %s", len(ce), source)}
				}
				return exitError{exitConfig, err}
			}
			fmt.Fprintf(env.stdout, "%s: ok\n", source)
			return nil
		}
	},
}
