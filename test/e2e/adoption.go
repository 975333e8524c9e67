package main

import (
	"context"
	"fmt"
)

// helmTest runs the chart's test hook, `helm test`, as the install's NOTES
// tell a user to: a pod of the image runs certs verify with a dry-run
// CREATE as the hook's own ServiceAccount. helm_test=1 when it passed.
// (Without --logs: a passed hook's pod is deleted, and --logs would fail
// to find it.)
func (e *e2e) helmTest(ctx context.Context) error {
	step("helm test: certs verify from inside the cluster, as the hook's ServiceAccount")
	err := e.expect(ctx, e.options.helm, []string{"test", e.release, "-n", e.namespace, "--timeout", "3m", "--kubeconfig", e.kubeconfig},
		"TEST SUITE:     "+e.release+"-test", "Phase:          Succeeded")
	if err != nil {
		return fmt.Errorf("helm test: %w", err)
	}
	e.helmTested = true
	return nil
}
