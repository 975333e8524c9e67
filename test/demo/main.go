// Command demo runs the whole of targetlock on one machine: a real control
// plane (etcd + kube-apiserver built by `make tools`), webhook and
// orchestrator processes, and a simulated executor; fires a storm of
// RemediationRequests and direct WorkflowExecution CREATEs; and checks that
// no target ever had two active WorkflowExecutions.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"go.uber.org/zap/zapcore"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
)

func main() {
	o := defaults()
	flag.IntVar(&o.targets, "targets", o.targets, "targets in the storm")
	flag.IntVar(&o.rrsPerTarget, "rrs-per-target", o.rrsPerTarget, "RemediationRequests per target")
	flag.IntVar(&o.directPerTarget, "direct-per-target", o.directPerTarget, "WorkflowExecutions per target created directly, bypassing the orchestrator (as kubectl would)")
	flag.IntVar(&o.orchestrators, "orchestrators", o.orchestrators, "orchestrator processes")
	flag.IntVar(&o.webhooks, "webhooks", o.webhooks, "webhook processes behind the one registered webhook")
	flag.DurationVar(&o.executorDelay, "executor-delay", o.executorDelay, "how long the simulated executor keeps each WorkflowExecution Pending, then Running")
	flag.DurationVar(&o.timeout, "timeout", o.timeout, "give up if the storm has not ended by then")
	flag.BoolVar(&o.keep, "keep", false, "keep the cluster up after the summary, until Ctrl-C")
	flag.StringVar(&o.binDir, "bin", o.binDir, "directory with the orchestrator and webhook binaries")
	flag.Parse()

	ctrl.SetLogger(zap.New(zap.Level(zapcore.ErrorLevel)))
	ok, err := runMain(o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
	if !ok {
		os.Exit(2)
	}
}

func runMain(o options) (bool, error) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return run(ctx, o, os.Stdout)
}
