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

	"github.com/go-logr/logr"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/targetlock/targetlock/internal/plugin"
)

func main() {
	// The plugin says what went wrong itself; controller-runtime's client
	// would otherwise print a stack trace to ask for a logger, 30 s into
	// a certs verify --wait.
	ctrllog.SetLogger(logr.Discard())
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := plugin.Execute(ctx, plugin.NewCommand(genericiooptions.IOStreams{In: os.Stdin, Out: os.Stdout, ErrOut: os.Stderr}))
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(plugin.ExitCode(err))
	}
}
