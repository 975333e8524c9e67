package main

import (
	"context"
	"fmt"
)

// helmTest runs the chart's test hook, `helm test`, as the install's NOTES
// tell a user to: a pod of the image runs certs verify with a dry-run
// CREATE as the hook's own ServiceAccount. helm_test=1 when it passed and
// printed the checks' table.
func (e *e2e) helmTest(ctx context.Context) error {
	step("helm test: certs verify from inside the cluster, as the hook's ServiceAccount")
	err := e.expect(ctx, e.options.helm, []string{"test", e.release, "-n", e.namespace, "--logs", "--timeout", "3m", "--kubeconfig", e.kubeconfig},
		"Succeeded", "ca-bundle-verifies-chain", "dry-run-create")
	if err != nil {
		return fmt.Errorf("helm test: %w", err)
	}
	e.helmTested = true
	return nil
}
