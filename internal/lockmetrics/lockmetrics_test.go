package lockmetrics

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"github.com/targetlock/targetlock/pkg/lease"
)

func TestCollect(t *testing.T) {
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	mk := func(ns, name string, claimed bool, managed bool) *coordinationv1.Lease {
		l := &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{}, Annotations: map[string]string{}}}
		if managed {
			l.Labels[lease.ManagedByLabel] = lease.ManagedBy
		}
		if claimed {
			l.Annotations[lease.ClaimUIDAnnotation] = "uid"
		}
		return l
	}
	c := fake.NewClientBuilder().WithScheme(s).WithObjects(
		mk("tl", "a", false, true), mk("tl", "b", true, true), mk("tl", "c", true, true),
		mk("tl", "member", false, false), // not a lock Lease
		mk("other", "d", true, true),     // another install
	).Build()
	want := `
# HELP targetlock_locks Objects whose Lease is Locked (an orchestrator deciding) or Claimed (an active WorkflowExecution), from this replica's cache; every replica reports the same figure, so aggregate with max.
# TYPE targetlock_locks gauge
targetlock_locks{state="Claimed"} 2
targetlock_locks{state="Locked"} 1
`
	if err := testutil.CollectAndCompare(New(c, "tl"), strings.NewReader(want)); err != nil {
		t.Error(err)
	}
}
