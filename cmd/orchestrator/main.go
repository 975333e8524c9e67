// Command orchestrator turns RemediationRequests into WorkflowExecutions,
// at most one active per target, with every replica active.
package main

import (
	"context"
	"os"

	"github.com/targetlock/targetlock/cmd/orchestrator/app"
	"github.com/targetlock/targetlock/internal/command"
)

func main() {
	command.Main("orchestrator", func(ctx context.Context, args []string) error {
		return app.Run(ctx, args, os.Stderr)
	})
}
