// Package command holds what the binaries' main functions share.
package command

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

// Main runs run with a context that ends on SIGINT or SIGTERM (so a
// Kubernetes pod shuts down cleanly) and, after printing its error
// prefixed by name, exits with the error's ExitCode() when it has one
// (the kubectl plugin's commands do), else 1.
func Main(name string, run func(ctx context.Context, args []string) error) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:])
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, name+":", err)
		var coded interface{ ExitCode() int }
		if errors.As(err, &coded) {
			os.Exit(coded.ExitCode())
		}
		os.Exit(1)
	}
}
