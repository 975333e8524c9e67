package target_test

import (
	"errors"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/targetlock/targetlock/pkg/target"
	"github.com/targetlock/targetlock/pkg/target/targettest"
)

func TestLeaseName(t *testing.T) {
	seen := map[string]string{}
	for _, k := range []target.Key{
		{Group: "apps", Kind: "Deployment", Namespace: "namespace-a", Name: "app-1"},
		{Group: "apps", Kind: "Deployment", Namespace: "namespace-a", Name: "app-2"},
		{Group: "apps", Kind: "StatefulSet", Namespace: "namespace-a", Name: "app-1"},
		{Group: "example.com", Kind: "Deployment", Namespace: "namespace-a", Name: "app-1"},
		{Kind: "Node", Name: "worker-1"},
	} {
		name := k.LeaseName()
		if other, dup := seen[name]; dup {
			t.Errorf("%v and %v share Lease name %q", k, other, name)
		}
		seen[name] = k.String()
		assertLeaseName(t, k)
	}
}

func assertLeaseName(t *testing.T, k target.Key) {
	t.Helper()
	name := k.LeaseName()
	if errs := validation.IsDNS1123Label(name); len(errs) > 0 {
		t.Errorf("LeaseName(%v) = %q is not a DNS-1123 label: %v", k, name, errs)
	}
	if errs := validation.IsValidLabelValue(k.Hash()); len(errs) > 0 {
		t.Errorf("Hash(%v) = %q is not a label value: %v", k, k.Hash(), errs)
	}
	if !strings.HasPrefix(name, target.LeasePrefix) {
		t.Errorf("LeaseName(%v) = %q lacks prefix %q", k, name, target.LeasePrefix)
	}
}

// FuzzParse: no input panics; a resolved key formats to a canonical string
// that parses back to the same key; every key's Lease name is a DNS-1123 label.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"demo/Deployment/app", "Node/worker-1", "a/b/c/d", "", "/", "ns//x", "é/K/n", "x/deploy.apps/y", "ns/Node/n",
		"payment/Route/web", "lh/lhn/n", "ns/Route.*/w", "ns/Deployment/web@prod-east", "Node/n@arn:aws:eks:us-east-1:1:cluster/p", "ns/K/n@a@b"} {
		f.Add(s)
	}
	r := targettest.Resolver()
	f.Fuzz(func(t *testing.T, s string) {
		if k, err := target.Parse(s); err == nil && k.String() != s {
			t.Fatalf("Parse(%q) accepted a non-canonical string as %v", s, k)
		}
		k, err := r.Parse(s)
		if err != nil {
			if errors.Is(err, target.ErrInvalid) && !strings.Contains(err.Error(), target.Form) {
				t.Fatalf("error %q does not show the expected form", err)
			}
			return
		}
		if back, err := target.Parse(k.String()); err != nil || back != k {
			t.Fatalf("round trip of %q: %v, %v (from %v)", s, back, err, k)
		}
		if again, err := r.ForTarget(k.Cluster, r.Spelling(k)); err != nil || again != k {
			t.Fatalf("spelling of %v resolves to %v, %v", k, again, err)
		}
		assertLeaseName(t, k)
	})
}

// Every String form parses back to its key; non-canonical strings do not.
func TestParseRoundTrip(t *testing.T) {
	for _, k := range []target.Key{
		{Group: "apps", Kind: "Deployment", Namespace: "payment", Name: "web"},
		{Kind: "Node", Name: "worker-1"},
		{Kind: "Event", Namespace: "demo", Name: "e.1"},
		{Group: "events.k8s.io", Kind: "Event", Namespace: "demo", Name: "e"},
		{Group: target.AnyGroup, Kind: "Route", Namespace: "payment", Name: "web"},
		{Group: target.AnyGroup, Kind: "Node", Name: "worker-1"},
		{Kind: "deployment", Namespace: "payment", Name: "web", Cluster: "prod-east"},
		{Group: "apps", Kind: "deployment", Namespace: "payment", Name: "web", Cluster: "prod-east"},
		{Kind: "node", Name: "worker-1", Cluster: "arn:aws:eks:us-east-1:123456789012:cluster/prod"},
		{Kind: "node", Name: "worker-1", Cluster: "https://prod.example.com:6443/x@y"},
	} {
		s := k.String()
		back, err := target.Parse(s)
		if err != nil || back != k {
			t.Errorf("Parse(%q) = %+v, %v; want %+v", s, back, err, k)
		}
		assertLeaseName(t, k)
	}
	for _, s := range []string{
		"payment/Deployment/web@prod",      // a remote Kind is lower-case
		"payment/deployment.Apps/web@prod", // and so is its group
		"payment/route.*/web@prod",         // no "*" for a remote kind
		"payment/deployment/web@",          // empty cluster
		"payment/deployment/web@ prod",     // space
		"payment/deployment/web@prod\n",
		"@prod",
		"payment/Route.*/web/x",
		"payment/Route.**/web",
	} {
		if k, err := target.Parse(s); err == nil || !errors.Is(err, target.ErrInvalid) {
			t.Errorf("Parse(%q) = %+v, %v; want ErrInvalid", s, k, err)
		}
	}
}
