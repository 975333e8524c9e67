// Command kubectl-targetlock is the kubectl plugin for targetlock installs:
// `kubectl targetlock locks`, `denials`, `certs verify` and `version`. Copy
// the binary onto PATH to install it. It exits 0 when all is well, 1 when
// a check failed, 2 on a usage error, 3 when the API server cannot be
// reached (plugin.ExitCode).
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/targetlock/targetlock/internal/plugin"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := plugin.Execute(ctx, plugin.NewCommand(genericiooptions.IOStreams{In: os.Stdin, Out: os.Stdout, ErrOut: os.Stderr}))
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(plugin.ExitCode(err))
	}
}
