package orchestrator

import "sigs.k8s.io/controller-runtime/pkg/reconcile"

// WithReconcileHook lets a test see every reconcile of a request by one replica.
func WithReconcileHook(o Options, f func(reconcile.Request)) Options {
	o.reconciled = f
	return o
}
