package testenv

import (
	"context"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"
	ctrl "sigs.k8s.io/controller-runtime"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/targetlock/targetlock/pkg/routing"
)

// FastRouting shortens routing's time-based blocks (a 5m cooldown, a 1m to
// 10m backoff, 3 failures in a row by default) so that tests, storms and
// benchmarks end. FastRoutingArgs are the same settings as orchestrator flags.
var FastRouting = routing.Options{
	ConsecutiveFailureThreshold: 1000,
	RecentlyRemediatedCooldown:  time.Millisecond,
	BackoffBase:                 10 * time.Millisecond,
	BackoffMax:                  50 * time.Millisecond,
}

// FastRoutingArgs returns FastRouting as orchestrator flags.
func FastRoutingArgs() []string {
	return []string{
		"--consecutive-failure-threshold=1000", "--recently-remediated-cooldown=1ms",
		"--backoff-base=10ms", "--backoff-max=50ms",
	}
}

// ManagerOptions are the options of a manager in a test: this control
// plane's scheme, no metrics or probe listeners (tests run in parallel).
func (e *Env) ManagerOptions() ctrl.Options {
	return ctrl.Options{Scheme: e.Scheme, Metrics: metricsserver.Options{BindAddress: "0"}, HealthProbeBindAddress: "0"}
}

// StartManager runs mgr in a goroutine until ctx ends or stop is called;
// stop waits for the manager to return and returns its error.
func StartManager(ctx context.Context, mgr ctrl.Manager) (stop func() error) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	return sync.OnceValue(func() error {
		cancel()
		return <-done
	})
}

// Eventually calls f until it returns nil and fails the test with f's last
// error if that takes longer than timeout.
func Eventually(tb interface {
	Helper()
	Fatalf(format string, args ...any)
}, timeout time.Duration, f func() error) {
	tb.Helper()
	var last error
	if err := wait.PollUntilContextTimeout(context.Background(), 10*time.Millisecond, timeout, true, func(context.Context) (bool, error) {
		last = f()
		return last == nil, nil
	}); err != nil {
		tb.Fatalf("after %s: %v", timeout, last)
	}
}
