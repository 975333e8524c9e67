package plugin

import (
	"context"
	"fmt"
	"time"

	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/utils/clock"

	"github.com/targetlock/targetlock/pkg/certcheck"
)

// waitClock times certs verify --wait; tests replace it.
var waitClock clock.Clock = clock.RealClock{}

// waitFlags are certs verify's --wait and --interval.
type waitFlags struct {
	wait, interval time.Duration
}

// verifyOnce runs the checks once. An unreachable API server is an error
// of its own (exit 3), not a failed check telling to install the chart.
func verifyOnce(ctx context.Context, flags *genericclioptions.ConfigFlags, o certcheck.Options) ([]certcheck.Result, error) {
	cfg, err := restConfig(flags)
	if err != nil {
		return nil, err
	}
	dc, err := flags.ToDiscoveryClient()
	if err != nil {
		return nil, usageError(err)
	}
	if _, err := dc.ServerVersion(); Unreachable(err) {
		return nil, &ExitError{Code: ExitUnreachable, Err: fmt.Errorf("cannot reach the API server at %s: %w", cfg.Host, err)}
	}
	c, err := newClient(flags)
	if err != nil {
		return nil, err
	}
	rs := certcheck.Verify(ctx, c, o)
	if !certcheck.OK(rs) {
		return rs, ErrChecksFailed
	}
	return rs, nil
}

// runVerify runs the checks until they pass or w.wait has elapsed (once
// when w.wait is 0), saying each failure on the way to stderr, and prints
// the last results.
func runVerify(ctx context.Context, flags *genericclioptions.ConfigFlags, streams genericiooptions.IOStreams,
	format output, o certcheck.Options, w waitFlags) error {
	deadline := waitClock.Now().Add(w.wait)
	for {
		rs, err := verifyOnce(ctx, flags, o)
		if err == nil || !waitClock.Now().Before(deadline) {
			if rs != nil {
				if perr := printResults(streams, format, rs); perr != nil {
					return perr
				}
			}
			return err
		}
		fmt.Fprintf(streams.ErrOut, "certs verify: %s; retrying in %s (--wait %s)\n", firstFailure(rs, err), w.interval, w.wait)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-waitClock.After(w.interval):
		}
	}
}

// firstFailure is the first failed check, or err.
func firstFailure(rs []certcheck.Result, err error) string {
	for _, r := range rs {
		if !r.OK {
			return r.Check + ": " + clean(r.Detail)
		}
	}
	return err.Error()
}
