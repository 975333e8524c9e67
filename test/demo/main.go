// Command demo runs targetlock on an embedded local control plane: real etcd
// and kube-apiserver built by `make tools`, with the CRDs installed.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	var opts options
	flag.StringVar(&opts.kubeconfig, "kubeconfig", "", "where to write the admin kubeconfig (default: a file in a new temporary directory)")
	flag.DurationVar(&opts.runFor, "for", 0, "stop after this long; 0 runs until Ctrl-C")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, opts, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}
