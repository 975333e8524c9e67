// Package app is the webhook command: the admission server, the `denials`
// subcommand for cluster admins and `certs verify` for CI.
package app

import (
	"context"
	"fmt"
	"io"

	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/targetlock/targetlock/api/v1alpha1"
	"github.com/targetlock/targetlock/internal/kubeflags"
)

// ControllerName reports the webhook's Events (their reportingController).
const ControllerName = "targetlock-webhook"

// Run runs the subcommand args name: `denials`, or by default the server.
// out receives command output (tables, JSON, help); errOut, diagnostics.
func Run(ctx context.Context, args []string, out, errOut io.Writer) error {
	if len(args) > 0 {
		switch args[0] {
		case "denials":
			return runDenials(ctx, args[1:], out)
		case "certs":
			return runCerts(ctx, args[1:], out)
		case "serve":
			args = args[1:]
		}
	}
	return runServe(ctx, args, out)
}

func newScheme() (*runtime.Scheme, error) {
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		return nil, err
	}
	if err := v1alpha1.AddToScheme(s); err != nil {
		return nil, err
	}
	return s, nil
}

// newClient is the admin subcommands' uncached client.
func newClient(kubeconfig string) (client.Client, error) {
	cfg, err := (&kubeflags.Flags{Kubeconfig: kubeconfig}).Config()
	if err != nil {
		return nil, fmt.Errorf("loading kubeconfig: %w", err)
	}
	scheme, err := newScheme()
	if err != nil {
		return nil, err
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		return nil, fmt.Errorf("creating client: %w", err)
	}
	return c, nil
}
