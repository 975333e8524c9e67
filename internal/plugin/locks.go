package plugin

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/duration"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/targetlock/targetlock/api/v1alpha1"
	"github.com/targetlock/targetlock/pkg/certcheck"
	"github.com/targetlock/targetlock/pkg/lease"
)

// Lock is one object's Lease: locked by an orchestrator deciding, or
// claimed by the WorkflowExecution that owns the object until it ends.
type Lock struct {
	Target string `json:"target"`
	// State is Locked or Claimed.
	State string `json:"state"`
	// Holder is the orchestrator pod (Locked) or the WFE "namespace/name"
	// (Claimed). A lock's token is never shown: it is a capability.
	Holder string    `json:"holder"`
	Since  time.Time `json:"since"`
	// Expires is when a lock lapses unless renewed, or a claim's grace
	// for a WFE that cannot be found ends.
	Expires time.Time `json:"expires"`
	// Phase is the claiming WFE's phase (Pending when not started), or
	// NotFound.
	Phase    string `json:"phase,omitempty"`
	Lease    string `json:"lease"`
	ClaimUID string `json:"claimUID,omitempty"`
}

// ListLocks reads the lock Leases in leaseNamespace whose object is in
// namespace ("" for all), with the phase of each claiming WFE.
func ListLocks(ctx context.Context, c client.Reader, leaseNamespace, namespace string) ([]Lock, error) {
	list := &coordinationv1.LeaseList{}
	if err := c.List(ctx, list, client.InNamespace(leaseNamespace), client.MatchingLabels{lease.ManagedByLabel: lease.ManagedBy}); err != nil {
		return nil, fmt.Errorf("listing Leases in %s: %w", leaseNamespace, err)
	}
	out := []Lock{}
	for i := range list.Items {
		l := lockOf(&list.Items[i])
		if namespace != "" && objectNamespace(l.Target) != namespace {
			continue
		}
		if l.State == string(lease.Claimed) {
			phase, err := wfePhase(ctx, c, l.Holder)
			if err != nil {
				return nil, err
			}
			l.Phase = phase
		}
		out = append(out, l)
	}
	slices.SortFunc(out, func(a, b Lock) int { return cmp.Compare(a.Target, b.Target) })
	return out, nil
}

func lockOf(le *coordinationv1.Lease) Lock {
	st := lease.Decode(le)
	l := Lock{Target: le.Annotations[lease.TargetAnnotation], State: string(st.Phase), Holder: st.Holder,
		Since: st.Acquired, Expires: st.Expires, Lease: le.Name, ClaimUID: string(st.ClaimUID)}
	if st.Phase == lease.Locked {
		l.Holder = lease.PodOf(st.Holder) // the token's nonce is a capability
	}
	return l
}

// objectNamespace is the namespace in a "namespace/Kind/name" key; "" for
// a cluster-scoped "Kind/name".
func objectNamespace(key string) string {
	if parts := strings.Split(key, "/"); len(parts) == 3 {
		return parts[0]
	}
	return ""
}

// wfePhase is the phase of the claiming WFE, in whichever guarded group
// serves it (targetlock.io, or kubernaut.ai in the kubernaut profile).
func wfePhase(ctx context.Context, c client.Reader, holder string) (string, error) {
	ns, name, ok := strings.Cut(holder, "/")
	if !ok {
		return "Unknown", nil
	}
	phase := "NotFound"
	for _, group := range certcheck.ExecutionGroups {
		wfe := &unstructured.Unstructured{}
		wfe.SetAPIVersion(group + "/" + v1alpha1.GroupVersion.Version)
		wfe.SetKind("WorkflowExecution")
		switch err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, wfe); {
		case apierrors.IsNotFound(err), meta.IsNoMatchError(err):
			continue
		case apierrors.IsForbidden(err):
			phase = "Forbidden"
			continue
		case err != nil:
			return "", fmt.Errorf("reading WorkflowExecution %s: %w", holder, err)
		}
		p, _, _ := unstructured.NestedString(wfe.Object, "status", "phase")
		return cmp.Or(p, string(v1alpha1.WorkflowExecutionPending)), nil
	}
	return phase, nil
}

// PrintLocks writes locks as a table ("" or "wide"), JSON or YAML.
func PrintLocks(out io.Writer, ls []Lock, format output, now time.Time) error {
	return printItems(out, format, ls, "No locks found.",
		columns{
			normal: []string{"TARGET", "STATE", "HOLDER", "PHASE", "AGE", "EXPIRES"},
			wide:   []string{"LEASE", "CLAIM UID"},
		},
		func(l Lock) columns {
			return columns{
				normal: []string{l.Target, l.State, l.Holder, dash(l.Phase), duration.HumanDuration(now.Sub(l.Since)), expiry(l.Expires, now)},
				wide:   []string{l.Lease, dash(l.ClaimUID)},
			}
		})
}

// expiry says when a lock expires, relative to now: "in 10s", "5s ago", or
// "-" for none.
func expiry(expires, now time.Time) string {
	if expires.IsZero() {
		return "-"
	}
	left := expires.Sub(now)
	if left > 0 {
		return "in " + duration.HumanDuration(left)
	}
	return duration.HumanDuration(-left) + " ago"
}

func newLocksCommand(flags *genericclioptions.ConfigFlags, streams genericiooptions.IOStreams) *cobra.Command {
	var (
		list           listing
		leaseNamespace string
	)
	cmd := &cobra.Command{
		Use:   "locks",
		Short: "Show who holds or claims which object, since when, with the WFE's phase",
		Long: `Show each object's Lease: Locked while an orchestrator replica decides
(the holder is the pod; the lock's token is never shown), or Claimed by the
WorkflowExecution that owns the object until it ends, with that WFE's phase.
A claim whose WFE is NotFound past EXPIRES is stale and is taken over by the
next CREATE or removed by the orchestrator's sweep.

-n and -A select the objects' namespaces; the Leases themselves live in the
release's namespace (--lease-namespace). Needs list on coordination.k8s.io
leases there, and get on workflowexecutions. Tables show control characters
(in a holder or target written by a forged request) as "?"; JSON and YAML
keep them, escaped.`,
		Example: `  kubectl targetlock locks -A
  kubectl targetlock locks -n shop -o wide`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ns, c, err := list.scope(flags)
			if err != nil {
				return err
			}
			ls, err := ListLocks(cmd.Context(), c, leaseNamespace, ns)
			if err != nil {
				return err
			}
			return PrintLocks(streams.Out, ls, list.format, time.Now())
		},
	}
	list.bind(cmd, "objects in every namespace")
	cmd.Flags().StringVar(&leaseNamespace, "lease-namespace", DefaultReleaseNamespace, "namespace of the release, where the Leases live")
	return cmd
}
