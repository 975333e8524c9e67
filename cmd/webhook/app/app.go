// Package app is the webhook command: the admission server. `webhook
// denials` and `webhook certs verify` remain as aliases of the kubectl
// plugin's commands (kubectl targetlock denials, certs verify).
package app

import (
	"context"
	"io"
	"strings"

	"github.com/targetlock/targetlock/pkg/admission"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"

	"github.com/targetlock/targetlock/api/v1alpha1"
	"github.com/targetlock/targetlock/internal/plugin"
)

// ControllerName reports the webhook's Events (their reportingController).
const ControllerName = admission.ReportingController

// Run runs the subcommand args name: `denials`, or by default the server.
// out receives command output (tables, JSON, help); errOut, diagnostics.
func Run(ctx context.Context, args []string, out, errOut io.Writer) error {
	if len(args) > 0 {
		switch args[0] {
		case "denials", "certs":
			cmd := plugin.NewCommand(genericiooptions.IOStreams{In: strings.NewReader(""), Out: out, ErrOut: errOut})
			cmd.SetArgs(args)
			return plugin.Execute(ctx, cmd) // carries the plugin's exit code
		case "serve":
			args = args[1:]
		}
	}
	return runServe(ctx, args, out)
}

// newScheme registers the built-in types and the WorkflowExecution of the
// guarded group: targetlock's own types, or kubernaut's WorkflowExecution
// read through the fields both schemas share (v1alpha1.AddExecutionToScheme).
func newScheme(group string) (*runtime.Scheme, error) {
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		return nil, err
	}
	if group == v1alpha1.GroupVersion.Group {
		return s, v1alpha1.AddToScheme(s)
	}
	return s, v1alpha1.AddExecutionToScheme(s, group)
}
