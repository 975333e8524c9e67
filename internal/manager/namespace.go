package manager

import (
	"context"
	"fmt"

	"github.com/go-logr/logr"
	coordinationv1 "k8s.io/api/coordination/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/targetlock/targetlock/pkg/lease"
	"github.com/targetlock/targetlock/pkg/ring"
)

// ForeignLeases are the names of the Leases in ns that targetlock did not
// make: neither target Leases nor the orchestrators' ring members. Both
// components may update and delete every Lease of their namespace (RBAC
// cannot narrow a Role by label), so any such Lease is one they could
// break: another controller's leader election, say.
func ForeignLeases(ctx context.Context, c client.Reader, ns string) ([]string, error) {
	list := &coordinationv1.LeaseList{}
	if err := c.List(ctx, list, client.InNamespace(ns)); err != nil {
		return nil, fmt.Errorf("listing Leases in %s: %w", ns, err)
	}
	var foreign []string
	for _, l := range list.Items {
		if l.Labels[lease.ManagedByLabel] != lease.ManagedBy && l.Labels[ring.Label] != ring.LabelValue {
			foreign = append(foreign, l.Name)
		}
	}
	return foreign, nil
}

// maxNamed bounds how many foreign Leases a warning names.
const maxNamed = 5

// WarnSharedNamespace logs a warning at startup if ns, where the Leases
// live, holds Leases targetlock did not make: it should be a namespace of
// its own. It never stops a start; a failed look is logged too.
func WarnSharedNamespace(ctx context.Context, c client.Reader, ns string, log logr.Logger) {
	foreign, err := ForeignLeases(ctx, c, ns)
	switch {
	case err != nil:
		log.Info("Could not check that the Lease namespace is targetlock's own", "namespace", ns, "error", err.Error())
	case len(foreign) > 0:
		log.Info("WARNING: the Lease namespace holds Leases targetlock did not make, which this component may update and delete; install targetlock into a namespace of its own",
			"namespace", ns, "foreignLeases", len(foreign), "examples", foreign[:min(len(foreign), maxNamed)])
	}
}
