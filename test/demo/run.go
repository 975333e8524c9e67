package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/targetlock/targetlock/internal/testenv"
)

type options struct {
	kubeconfig string
	runFor     time.Duration
}

// run brings up the control plane, tells the user how to reach it, and stops
// it cleanly when ctx ends.
func run(ctx context.Context, opts options, out io.Writer) (err error) {
	fmt.Fprintln(out, "starting etcd and kube-apiserver...")
	env, err := testenv.Start(testenv.Options{})
	if err != nil {
		return err
	}
	defer func() {
		fmt.Fprintln(out, "stopping the control plane...")
		if stopErr := env.Stop(); stopErr != nil && err == nil {
			err = stopErr
		}
	}()

	path := opts.kubeconfig
	if path == "" {
		dir, err := os.MkdirTemp("", "targetlock-demo-")
		if err != nil {
			return err
		}
		path = filepath.Join(dir, "kubeconfig")
	}
	if err := env.Kubeconfig(path); err != nil {
		return err
	}
	fmt.Fprintf(out, "control plane up at %s with the targetlock CRDs installed\n", env.Config.Host)
	fmt.Fprintf(out, "kubeconfig: %s\n", path)
	fmt.Fprintf(out, "try:\n  export KUBECONFIG=%s\n  kubectl get crds\n  kubectl get rr,wfe -A\n", path)

	if opts.runFor > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, opts.runFor)
		defer cancel()
	} else {
		fmt.Fprintln(out, "press Ctrl-C to stop")
	}
	<-ctx.Done()
	return nil
}
