package target_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/targetlock/targetlock/api/v1alpha1"
	"github.com/targetlock/targetlock/pkg/target"
	"github.com/targetlock/targetlock/pkg/target/targettest"
)

func TestRemoteCluster(t *testing.T) {
	r := targettest.Resolver()
	key := func(cluster, tgt string) target.Key {
		t.Helper()
		k, err := r.ForTarget(cluster, tgt)
		if err != nil {
			t.Fatalf("ForTarget(%q, %q): %v", cluster, tgt, err)
		}
		return k
	}
	// Case does not matter, and the hub's discovery is not consulted.
	for _, tt := range []struct{ cluster, in, want string }{
		{"prod-east", "payment/Deployment/web", "payment/deployment.apps/web@prod-east"},
		{"prod-east", "payment/deployment/web", "payment/deployment.apps/web@prod-east"},
		{"prod-east", "payment/DEPLOYMENT/web", "payment/deployment.apps/web@prod-east"},
		{"prod-east", "payment/deployments/web", "payment/deployment.apps/web@prod-east"}, // a built-in kind: any spelling
		{"prod-east", "payment/Deployment.apps/web", "payment/deployment.apps/web@prod-east"},
		{"prod-east", "Node/worker-1", "node/worker-1@prod-east"},
		{"prod-east", "payment/Gadget/g", "payment/gadget/g@prod-east"},   // unknown here, maybe served there
		{"prod-east", "payment/gadgets/g", "payment/gadgets/g@prod-east"}, // as written: a plural is another key there
		{"prod-east", "default/Node/worker-1", "node/worker-1@prod-east"}, // a built-in's scope: one Node
		{"prod-east", "nodes/worker-1", "node/worker-1@prod-east"},
		{"arn:aws:eks:us-east-1:123456789012:cluster/prod", "payment/Deployment/web", "payment/deployment.apps/web@arn:aws:eks:us-east-1:123456789012:cluster/prod"},
		{"a@b", "ns/K/n", "ns/k/n@a@b"},
		{"集群-1", "ns/K/n", "ns/k/n@集群-1"},
	} {
		k := key(tt.cluster, tt.in)
		if k.String() != tt.want || k.Cluster != tt.cluster {
			t.Errorf("ForTarget(%q, %q) = %q, want %q", tt.cluster, tt.in, k, tt.want)
		}
		assertRemoteRoundTrip(t, r, k)
	}
	assertClustersApart(t, r, key)
}

// assertRemoteRoundTrip: a remote key parses back, its spelling resolves
// back to it, and the hub knows no resource for it.
func assertRemoteRoundTrip(t *testing.T, r *target.Resolver, k target.Key) {
	t.Helper()
	if back, err := target.Parse(k.String()); err != nil || back != k {
		t.Errorf("%q does not parse back: %+v, %v", k, back, err)
	}
	if back, err := r.Parse(k.String()); err != nil || back != k {
		t.Errorf("Resolver.Parse(%q) = %+v, %v", k, back, err)
	}
	if back, err := r.ForTarget(k.Cluster, r.Spelling(k)); err != nil || back != k {
		t.Errorf("spelling %q of %v resolves to %v, %v", r.Spelling(k), k, back, err)
	}
	if r.Resource(k) != "" {
		t.Errorf("Resource(%v) = %q: the hub knows no remote resource", k, r.Resource(k))
	}
}

// assertClustersApart: one object name in three clusters is three keys.
func assertClustersApart(t *testing.T, r *target.Resolver, key func(cluster, tgt string) target.Key) {
	t.Helper()
	local := key("", "payment/Deployment/web")
	east, west := key("prod-east", "payment/Deployment/web"), key("prod-west", "payment/Deployment/web")
	if local.String() != "payment/Deployment.apps/web" || local.Cluster != "" {
		t.Errorf("empty cluster ID = %v, want the local key", local)
	}
	if len(map[string]bool{local.LeaseName(): true, east.LeaseName(): true, west.LeaseName(): true}) != 3 {
		t.Error("one name in three clusters shares a Lease")
	}
	wfe := &v1alpha1.WorkflowExecution{Spec: v1alpha1.WorkflowExecutionSpec{TargetResource: "payment/Deployment/web", ClusterID: "prod-east"}}
	if k, err := r.ForExecution(wfe); err != nil || k != east {
		t.Errorf("ForExecution = %v, %v; want %v", k, err, east)
	}
	wfe.Spec.ClusterID = ""
	if k, err := r.ForExecution(wfe); err != nil || k != local {
		t.Errorf("ForExecution without cluster = %v, %v; want %v", k, err, local)
	}
}

func TestRemoteClusterRefusals(t *testing.T) {
	r := targettest.Resolver()
	for _, tt := range []struct{ cluster, in, want string }{
		{" ", "ns/K/n", "empty cluster ID"},
		{"\t\n", "ns/K/n", "empty cluster ID"},
		{" prod", "ns/K/n", "space"},
		{"prod east", "ns/K/n", "space"},
		{"prod\n", "ns/K/n", "space"},
		{"prod\x00", "ns/K/n", "control"},
		{"prod\x7f", "ns/K/n", "control"},
		{"prod\u200b", "ns/K/n", "control"}, // zero-width space
		{"prod\u00a0", "ns/K/n", "space"},   // no-break space
		{"\xff\xfe", "ns/K/n", "UTF-8"},
		{strings.Repeat("c", 254), "ns/K/n", "longer than 253"},
		{"prod", "ns/Route.*/n", "not \".*\""},
		{"prod", "ns/Deploy-ment/n", "kind must be"},
		{"prod", "Deployment/web", "is namespaced"}, // a built-in kind's scope holds there too
		{"prod", "Demo/K/n", "namespace"},
		{"prod", "ns/K/N", "name"},
		{"prod", "a/b/c/d", "got 4"},
		{"prod", "ns/K/n@other", "name"},
		{"", "ns/Deployment/web@prod", "clusterID"},
	} {
		k, err := r.ForTarget(tt.cluster, tt.in)
		if err == nil || !errors.Is(err, target.ErrInvalid) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("ForTarget(%q, %q) = %v, %v; want ErrInvalid containing %q", tt.cluster, tt.in, k, err, tt.want)
		}
	}
	if k, err := r.ForTarget(strings.Repeat("c", 253), "ns/K/n"); err != nil {
		t.Errorf("a 253-byte cluster ID: %v, %v", k, err)
	}
}
