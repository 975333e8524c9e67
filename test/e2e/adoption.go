package main

import (
	"context"
	"fmt"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/targetlock/targetlock/test/framework/warnings"
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

// warnedObject is the checker's key for the duplicate warn mode admits:
// apart from the storm's objects, whose invariant it would break by design.
const warnedObject = -1

// warnMode runs between the recipe's warn-mode install and its switch to
// enforce: kubernaut's RO creates a second WFE for the object busy since
// before the install, which warn mode admits with its warning and records
// as WouldRefuse, in the Events and in the Policy Report. The duplicate is
// then deleted, as an operator ends one, and warn_mode=1.
func (e *e2e) warnMode(ctx context.Context, ch *kubernautChecker) error {
	step("kubernaut profile, warn mode: a second WFE for a busy object is admitted with a warning and recorded")
	var w warnings.Collector
	cfg := e.impersonating(roSA, "")
	cfg.WarningHandlerWithContext = &w
	ro, err := client.New(cfg, client.Options{Scheme: e.scheme})
	if err != nil {
		return err
	}
	dup := kubernautExecution(0, 2, "warned")
	ch.expect(dup.GetName(), warnedObject)
	if err := ro.Create(ctx, dup); err != nil {
		return fmt.Errorf("warn mode refused a second WFE for a busy object: %w", err)
	}
	if !w.Contain("targetlock (warn mode): would refuse: ") {
		return fmt.Errorf("warn mode admitted %s without its warning (got %v)", dup.GetName(), w.Take())
	}
	for _, from := range []string{"events", "reports"} {
		err := poll(ctx, 30*time.Second, "denials --from "+from+" to list the would-be refusal", func(ctx context.Context) error {
			return e.kubectlPlugin(ctx, []string{"WouldRefuse", dup.GetName()}, "denials", "-n", kubernautNS, "--from", from, "-o", "wide")
		})
		if err != nil {
			return err
		}
	}
	if err := e.c.Delete(ctx, dup); err != nil {
		return fmt.Errorf("deleting the warned duplicate: %w", err)
	}
	e.warned = true
	return nil
}

func isUpgrade(cmd []string) bool { return len(cmd) > 1 && cmd[0] == "helm" && cmd[1] == "upgrade" }
