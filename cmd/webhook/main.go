// Command webhook serves the WorkflowExecution validating admission webhook,
// `webhook denials` lists the admissions it refused, and `webhook certs
// verify` checks its certificates for CI.
package main

import (
	"context"
	"os"

	"github.com/targetlock/targetlock/cmd/webhook/app"
	"github.com/targetlock/targetlock/internal/command"
)

func main() {
	command.Main("webhook", func(ctx context.Context, args []string) error {
		return app.Run(ctx, args, os.Stdout, os.Stderr)
	})
}
