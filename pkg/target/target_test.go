package target_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/targetlock/targetlock/api/v1alpha1"
	"github.com/targetlock/targetlock/internal/targettest"
	"github.com/targetlock/targetlock/pkg/target"
)

// The objects below are known by construction: each spelling in a family
// must give exactly the key written next to it.
func TestOneObjectOneKey(t *testing.T) {
	r := targettest.Resolver()
	families := map[string][]string{
		"demo/Deployment.apps/app": {
			"demo/Deployment/app", "demo/deployment/app", "demo/DEPLOYMENT/app", "demo/deployments/app",
			"demo/Deployments/app", "demo/deploy/app", "demo/Deploy/app", "demo/Deployment.apps/app",
			"demo/deployments.apps/app", "demo/deploy.apps/app", "demo/deployment.apps/app",
		},
		"Node/w1": {
			"Node/w1", "node/w1", "nodes/w1", "NODE/w1", "no/w1",
			"team-a/Node/w1", "monitoring/node/w1", "kube-system/nodes/w1",
		},
		"demo/Widget.example.com/w":  {"demo/widget/w", "demo/widgets.example.com/w", "demo/wd/w", "demo/WIDGET/w"},
		"demo/Event.events.k8s.io/e": {"demo/Event.events.k8s.io/e", "demo/events.events.k8s.io/e", "demo/ev.events.k8s.io/e"},
	}
	for want, spellings := range families {
		for _, s := range spellings {
			k, err := r.Parse(s)
			if err != nil {
				t.Errorf("Parse(%q): %v", s, err)
				continue
			}
			if k.String() != want {
				t.Errorf("Parse(%q) = %q, want %q", s, k, want)
			}
			if back, err := target.Parse(k.String()); err != nil || back != k {
				t.Errorf("canonical %q does not parse back: %v, %v", k, back, err)
			}
			assertLeaseName(t, k)
		}
	}
	other, err := r.Parse("demo/StatefulSet/app")
	if err != nil {
		t.Fatal(err)
	}
	dep, _ := r.Parse("demo/Deployment/app")
	if other.LeaseName() == dep.LeaseName() {
		t.Error("a StatefulSet and a Deployment of one name share a Lease")
	}
}

func TestRefusals(t *testing.T) {
	r := targettest.Resolver()
	tests := []struct{ in, want string }{
		{"", "got 1"},
		{"app", "got 1"},
		{"a/b/c/d", "got 4"},
		{"/Deployment/app", "empty namespace"},
		{"demo//app", "empty kind"},
		{"demo/Deployment/", "empty name"},
		{"Node/", "empty name"},
		{"Demo/Deployment/app", "namespace"},
		{"demo/Deploy-ment/app", "kind must be"},
		{"demo/1Deployment/app", "kind must be"},
		{"demo/Deployment./app", "kind must be"},
		{"demo/Deployment/App", "name"},
		{"demo/Deployment/ä", "name"},
		{"démo/Deployment/app", "namespace"},
		{"demo/Dеployment/app", "kind must be"}, // Cyrillic e
		{"demo/Deployment/" + strings.Repeat("a", 254), "name"},
		{"demo/" + strings.Repeat("K", 254) + "/app", "kind longer"},
		{strings.Repeat("n", 64) + "/Deployment/app", "namespace"},
		{"demo/Gadget/app", `serves no kind "Gadget"`},
		{"demo/Deployment.batch/app", `serves no kind "Deployment.batch"`},
		{"Deployment/app", "Deployment.apps is namespaced"},
		{"demo/Event/e", "write one of Event, Event.events.k8s.io"},
		{"demo/events/e", "served by 2 groups"},
	}
	for _, tt := range tests {
		k, err := r.Parse(tt.in)
		if err == nil {
			t.Errorf("Parse(%q) = %v, want an error containing %q", tt.in, k, tt.want)
			continue
		}
		for _, want := range []string{tt.want, target.Form} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("Parse(%q) error %q does not contain %q", tt.in, err, want)
			}
		}
		if !errors.Is(err, target.ErrInvalid) {
			t.Errorf("Parse(%q) error is not ErrInvalid: %v", tt.in, err)
		}
		if len(err.Error()) > 500 {
			t.Errorf("error message is %d bytes; it must stay readable", len(err.Error()))
		}
	}
}

func TestRemediationAndExecutionAgree(t *testing.T) {
	r := targettest.Resolver()
	rr := &v1alpha1.RemediationRequest{Spec: v1alpha1.RemediationRequestSpec{
		TargetResource: v1alpha1.ResourceIdentifier{Kind: "Deployment", Namespace: "demo", Name: "app", APIVersion: "apps/v1"},
	}}
	wfe := &v1alpha1.WorkflowExecution{Spec: v1alpha1.WorkflowExecutionSpec{TargetResource: "demo/deployments/app"}}
	a, err := r.ForRemediation(rr)
	if err != nil {
		t.Fatal(err)
	}
	b, err := r.ForExecution(wfe)
	if err != nil {
		t.Fatal(err)
	}
	if a != b {
		t.Errorf("RR key %v != WFE key %v", a, b)
	}
	// apiVersion picks the group of a Kind two groups serve.
	ev := &v1alpha1.RemediationRequest{Spec: v1alpha1.RemediationRequestSpec{
		TargetResource: v1alpha1.ResourceIdentifier{Kind: "Event", Namespace: "demo", Name: "e", APIVersion: "events.k8s.io/v1"},
	}}
	if k, err := r.ForRemediation(ev); err != nil || k.String() != "demo/Event.events.k8s.io/e" {
		t.Errorf("Event with apiVersion = %v, %v", k, err)
	}
	node := &v1alpha1.RemediationRequest{Spec: v1alpha1.RemediationRequestSpec{
		TargetResource: v1alpha1.ResourceIdentifier{Kind: "node", Namespace: "monitoring", Name: "worker-1"},
	}}
	if k, err := r.ForRemediation(node); err != nil || k.String() != "Node/worker-1" {
		t.Errorf("cluster-scoped key = %v, %v; want Node/worker-1", k, err)
	}
	if _, err := r.ForRemediation(&v1alpha1.RemediationRequest{}); !errors.Is(err, target.ErrInvalid) {
		t.Errorf("empty RR target: %v, want ErrInvalid", err)
	}
}

func TestSpelling(t *testing.T) {
	r := targettest.Resolver()
	for in, want := range map[string]string{
		"demo/deploy/app":            "demo/Deployment/app",
		"monitoring/nodes/w1":        "Node/w1",
		"demo/Event.events.k8s.io/e": "demo/Event.events.k8s.io/e",
		"demo/ev/e.x":                "",
	} {
		k, err := r.Parse(in)
		if want == "" {
			if err == nil {
				t.Errorf("Parse(%q) = %v, want ambiguous", in, k)
			}
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if got := r.Spelling(k); got != want {
			t.Errorf("Spelling(%v) = %q, want %q", k, got, want)
		}
		if back, err := r.Parse(r.Spelling(k)); err != nil || back != k {
			t.Errorf("the spelling of %v resolves to %v, %v", k, back, err)
		}
	}
}

// discovery counts its calls and can fail or gain kinds.
type discovery struct {
	calls int
	err   error
	res   target.Resources
}

func (d *discovery) ServerPreferredResources() ([]*metav1.APIResourceList, error) {
	d.calls++
	return d.res, d.err
}

func TestRediscoveryOnMissIsBounded(t *testing.T) {
	clk := clocktesting.NewFakePassiveClock(time.Unix(1000, 0))
	d := &discovery{res: targettest.Resources[:1]}
	r := target.NewResolver(d, clk)
	if _, err := r.Parse("demo/Deployment/app"); !errors.Is(err, target.ErrInvalid) {
		t.Fatalf("before apps is served: %v, want ErrInvalid", err)
	}
	for range 100 {
		_, _ = r.Parse("demo/Gadget/app")
	}
	if d.calls != 1 {
		t.Errorf("discovery called %d times within MinRefresh, want 1", d.calls)
	}
	d.res = targettest.Resources // a CRD or group installed since
	clk.SetTime(clk.Now().Add(target.MinRefresh))
	if _, err := r.Parse("demo/Deployment/app"); err != nil {
		t.Errorf("after MinRefresh: %v", err)
	}
	if _, err := r.Parse("Node/w1"); err != nil || d.calls != 2 {
		t.Errorf("a known kind must not rediscover: %v, calls=%d", err, d.calls)
	}
}

func TestDiscoveryErrorIsTransient(t *testing.T) {
	d := &discovery{err: errors.New("connection refused")}
	_, err := target.NewResolver(d, nil).Parse("Node/w1")
	if err == nil || errors.Is(err, target.ErrInvalid) {
		t.Errorf("discovery down: %v, want a transient error", err)
	}
}

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
	for _, s := range []string{"demo/Deployment/app", "Node/worker-1", "a/b/c/d", "", "/", "ns//x", "é/K/n", "x/deploy.apps/y", "ns/Node/n"} {
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
		if again, err := r.Parse(r.Spelling(k)); err != nil || again != k {
			t.Fatalf("spelling of %v resolves to %v, %v", k, again, err)
		}
		assertLeaseName(t, k)
	})
}
