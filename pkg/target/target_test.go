package target_test

import (
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation"
	kdiscovery "k8s.io/client-go/discovery"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/targetlock/targetlock/api/v1alpha1"
	"github.com/targetlock/targetlock/pkg/target"
	"github.com/targetlock/targetlock/pkg/target/targettest"
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
		// Longhorn's Node does not take the bare spellings: built-in kinds win.
		"Node/worker-1": {
			"Node/worker-1", "node/worker-1", "nodes/worker-1", "NODE/worker-1", "no/worker-1", "Nodes/worker-1",
			"team-a/Node/worker-1", "monitoring/node/worker-1", "kube-system/nodes/worker-1", "longhorn-system/no/worker-1",
		},
		"longhorn-system/Node.*/worker-1": {
			"longhorn-system/Node.longhorn.io/worker-1", "longhorn-system/node.longhorn.io/worker-1",
			"longhorn-system/nodes.longhorn.io/worker-1", "longhorn-system/lhn/worker-1", "longhorn-system/LHN/worker-1",
			"longhorn-system/lhn.longhorn.io/worker-1", "longhorn-system/Node.*/worker-1", "longhorn-system/nodes.*/worker-1",
		},
		// Two CRD groups serve Route: every spelling, with a group or
		// without, shares one key.
		"payment/Route.*/web": {
			"payment/Route/web", "payment/route/web", "payment/ROUTE/web", "payment/routes/web", "payment/rt/web",
			"payment/Route.route.openshift.io/web", "payment/routes.route.openshift.io/web",
			"payment/routes.other.io/web", "payment/Route.other.io/web", "payment/rt.other.io/web", "payment/Route.*/web",
		},
		"demo/Widget.*/w": {
			"demo/widget/w", "demo/Widget/w", "demo/widgets.example.com/w", "demo/Widget.example.com/w",
			"demo/wd/w", "demo/WIDGET/w", "demo/Widget.*/w",
		},
		// Core is first in discovery order: it takes the bare Event.
		"demo/Event/e":               {"demo/Event/e", "demo/event/e", "demo/events/e", "demo/ev/e", "demo/EVENTS/e"},
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
		{"Node.longhorn.io/worker-1", "Node is namespaced"},
		{"Route/web", "Route is namespaced"},
		{"Route.other.io/web", "Route is namespaced"},
		{"demo/Deployment.*/app", `serves no kind "Deployment.*"`}, // "*" is for kinds not built in
		{"demo/Gadget.*/app", `serves no kind "Gadget.*"`},
		{"demo/Route.*.io/web", "kind must be"},
		{"demo/Route.openshift.*/web", "kind must be"},
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
		"demo/ev/e.x":                "demo/Event/e.x",
		"payment/routes.other.io/w":  "payment/Route/w",
		"payment/Route.*/w":          "payment/Route/w",
		// The bare Kind is the core Node's: Longhorn's keeps a group.
		"longhorn-system/lhn/w1": "longhorn-system/Node.longhorn.io/w1",
		"demo/wd/w":              "demo/Widget/w",
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

// api builds a fixed discovery: each entry is "group/version" followed by
// resources "plural:Kind:scope[:short...]", scope "ns" or "cluster".
func api(groups ...[]string) target.Resources {
	var out target.Resources
	for _, g := range groups {
		list := &metav1.APIResourceList{GroupVersion: g[0]}
		for _, r := range g[1:] {
			f := strings.Split(r, ":")
			list.APIResources = append(list.APIResources, metav1.APIResource{
				Name: f[0], SingularName: strings.ToLower(f[1]), Kind: f[1], Namespaced: f[2] == "ns", ShortNames: f[3:],
			})
		}
		out = append(out, list)
	}
	return out
}

var (
	core        = []string{"v1", "nodes:Node:cluster:no", "events:Event:ns:ev", "pods:Pod:ns:po"}
	eventsGroup = []string{"events.k8s.io/v1", "events:Event:ns:ev"}
)

// TestAdversarialTables resolves spellings against tables a real cluster
// may serve: CRDs shadowing built-in kinds, one Kind in several CRD groups
// whose scopes or case disagree, short names colliding.
func TestAdversarialTables(t *testing.T) {
	tests := []struct {
		name  string
		api   target.Resources
		in    string
		want  string // "" with err set: refused
		final bool   // the refusal is ErrInvalid
		err   string
	}{
		{"CRD Event beside core", api(core, eventsGroup, []string{"events.example.io/v1", "events:Event:ns"}), "demo/Event/e", "demo/Event/e", false, ""},
		{"CRD Event by group", api(core, eventsGroup, []string{"events.example.io/v1", "events:Event:ns"}), "demo/events.events.example.io/e", "demo/Event.*/e", false, ""},
		{"built-in by group", api(core, eventsGroup, []string{"events.example.io/v1", "events:Event:ns"}), "demo/ev.events.k8s.io/e", "demo/Event.events.k8s.io/e", false, ""},
		// Discovery order among built-in groups decides, not the core group.
		{"first built-in wins", api(eventsGroup, core), "demo/Event/e", "demo/Event.events.k8s.io/e", false, ""},
		// Were Longhorn's Node cluster-scoped (it is namespaced), it would drop
		// the namespace as the core Node does, and still not share its key.
		{"cluster-scoped CRD Node", api(core, []string{"longhorn.io/v1beta2", "nodes:Node:cluster:lhn"}), "Node.longhorn.io/worker-1", "Node.*/worker-1", false, ""},
		{"cluster-scoped CRD Node, namespace dropped", api(core, []string{"longhorn.io/v1beta2", "nodes:Node:cluster:lhn"}), "longhorn-system/nodes.longhorn.io/worker-1", "Node.*/worker-1", false, ""},
		{"core Node beside it", api(core, []string{"longhorn.io/v1beta2", "nodes:Node:cluster:lhn"}), "longhorn-system/no/worker-1", "Node/worker-1", false, ""},
		{"CRD listed first still loses", api([]string{"longhorn.io/v1beta2", "nodes:Node:ns:lhn"}, core), "longhorn-system/node/w1", "Node/w1", false, ""},
		{"a CRD's Kind beats a built-in's short name", api(core, []string{"x.io/v1", "nos:No:ns"}), "demo/No/w1", "demo/No.*/w1", false, ""},
		{"the built-in by its plural", api(core, []string{"x.io/v1", "nos:No:ns"}), "nodes/w1", "Node/w1", false, ""},
		{"aggregated API is not built in", api(core, []string{"metrics.k8s.io/v1beta1", "nodes:NodeMetrics:cluster"}), "NodeMetrics/w1", "NodeMetrics.*/w1", false, ""},
		{"apiextensions is built in", api(core, []string{"apiextensions.k8s.io/v1", "customresourcedefinitions:CustomResourceDefinition:cluster:crd"}), "ns/crd/routes.other.io", "CustomResourceDefinition.apiextensions.k8s.io/routes.other.io", false, ""},
		// Scopes disagree: the namespace stays as written, whatever the spelling.
		{"mixed scope, namespace kept", api([]string{"a.io/v1", "routes:Route:ns"}, []string{"b.io/v1", "routes:Route:cluster"}), "payment/Route/web", "payment/Route.*/web", false, ""},
		{"mixed scope, none written", api([]string{"a.io/v1", "routes:Route:ns"}, []string{"b.io/v1", "routes:Route:cluster"}), "Route/web", "Route.*/web", false, ""},
		{"mixed scope, by its group", api([]string{"a.io/v1", "routes:Route:ns"}, []string{"b.io/v1", "routes:Route:cluster"}), "payment/Route.b.io/web", "payment/Route.*/web", false, ""},
		{"cluster-scoped CRD drops namespace", api([]string{"a.io/v1", "clusterwidgets:ClusterWidget:cluster"}), "payment/ClusterWidget/w", "ClusterWidget.*/w", false, ""},
		{"namespaced CRD needs one", api([]string{"a.io/v1", "widgets:Widget:ns"}), "Widget/w", "", true, "Widget is namespaced"},
		// Kinds differing in case only share the first in byte order.
		{"case-only Kinds, bare", api([]string{"a.io/v1", "routes:Route:ns"}, []string{"b.io/v1", "routes:ROUTE:ns"}), "payment/route/web", "payment/ROUTE.*/web", false, ""},
		{"case-only Kinds, by group", api([]string{"a.io/v1", "routes:Route:ns"}, []string{"b.io/v1", "routes:ROUTE:ns"}), "payment/Route.a.io/web", "payment/ROUTE.*/web", false, ""},
		// A Kind beats another kind's short name: the controller writes Kinds.
		{"Kind beats short name", api([]string{"a.io/v1", "foos:Foo:ns"}, []string{"b.io/v1", "bars:Bar:ns:foo"}), "demo/foo/x", "demo/Foo.*/x", false, ""},
		{"short name of two kinds", api([]string{"a.io/v1", "alphas:Alpha:ns:x"}, []string{"b.io/v1", "betas:Beta:ns:x"}), "demo/x/n", "", true, "write one of Alpha.a.io, Beta.b.io"},
		{"unknown", api(core), "demo/Gadget/x", "", true, `serves no kind "Gadget"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, err := target.NewResolver(tt.api, nil).Parse(tt.in)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) || errors.Is(err, target.ErrInvalid) != tt.final {
					t.Fatalf("Parse(%q) = %v, %v; want error %q (final %v)", tt.in, k, err, tt.err, tt.final)
				}
				return
			}
			if err != nil || k.String() != tt.want {
				t.Fatalf("Parse(%q) = %v, %v; want %q", tt.in, k, err, tt.want)
			}
			if back, err := target.Parse(k.String()); err != nil || back != k {
				t.Errorf("%q does not parse back: %v, %v", k, back, err)
			}
		})
	}
}

// A CRD moved to another group (or two replicas seeing it in different
// groups) keeps one key per object, and so one Lease.
func TestCRDMovedBetweenGroups(t *testing.T) {
	before := target.NewResolver(api(core, []string{"route.openshift.io/v1", "routes:Route:ns"}), nil)
	after := target.NewResolver(api(core, []string{"other.io/v1", "routes:Route:ns:rt"}), nil)
	want := "payment/Route.*/web"
	for _, c := range []struct {
		r  *target.Resolver
		in string
	}{
		{before, "payment/Route/web"}, {before, "payment/Route.route.openshift.io/web"}, {before, "payment/routes/web"},
		{after, "payment/Route/web"}, {after, "payment/routes.other.io/web"}, {after, "payment/rt/web"},
	} {
		if k, err := c.r.Parse(c.in); err != nil || k.String() != want {
			t.Errorf("Parse(%q) = %v, %v; want %q", c.in, k, err, want)
		}
	}
}

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
		if back, err := target.Parse(k.String()); err != nil || back != k {
			t.Errorf("%q does not parse back: %+v, %v", k, back, err)
		}
		if back, err := r.Parse(k.String()); err != nil || back != k {
			t.Errorf("Resolver.Parse(%q) = %+v, %v", k, back, err)
		}
		if back := key(k.Cluster, r.Spelling(k)); back != k {
			t.Errorf("spelling %q of %v resolves to %v", r.Spelling(k), k, back)
		}
		if r.Resource(k) != "" {
			t.Errorf("Resource(%v) = %q: the hub knows no remote resource", k, r.Resource(k))
		}
	}
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

func TestResource(t *testing.T) {
	r := targettest.Resolver()
	for in, want := range map[string]string{
		"demo/deploy/app":                  "deployments",
		"Node/w1":                          "nodes",
		"demo/Event.events.k8s.io/e":       "events",
		"payment/Route/web":                "", // a key without group names no resource
		"longhorn-system/lhn/w":            "",
		"payment/Deployment/web@prod-east": "",
	} {
		k, err := r.Parse(in)
		if err != nil {
			t.Fatal(err)
		}
		if got := r.Resource(k); got != want {
			t.Errorf("Resource(%v) = %q, want %q", k, got, want)
		}
	}
}

// cachedDiscovery is a discovery with a cache to invalidate, as kubectl's.
type cachedDiscovery struct {
	discovery
	invalidations int
}

func (c *cachedDiscovery) Invalidate() { c.invalidations++ }

func TestInvalidate(t *testing.T) {
	clk := clocktesting.NewFakePassiveClock(time.Unix(1000, 0))
	d := &cachedDiscovery{discovery: discovery{res: api(core, []string{"a.io/v1", "routes:Route:cluster"})}}
	r := target.NewResolver(d, clk)
	parse := func(s string) string {
		t.Helper()
		k, err := r.Parse(s)
		if err != nil {
			return "error: " + err.Error()
		}
		return k.String()
	}
	if got := parse("payment/Route/web"); got != "Route.*/web" || d.calls != 1 {
		t.Fatalf("first lookup = %q, calls=%d", got, d.calls)
	}
	// The CRD turns namespaced (deleted and created again): a known
	// spelling changes meaning, which only a re-read shows.
	d.res = api(core, []string{"a.io/v1", "routes:Route:ns"})
	if got := parse("payment/Route/web"); got != "Route.*/web" || d.calls != 1 {
		t.Fatalf("without Invalidate = %q, calls=%d; want the table kept", got, d.calls)
	}
	r.Invalidate()
	if got := parse("payment/Route/web"); got != "payment/Route.*/web" || d.calls != 2 || d.invalidations != 1 {
		t.Errorf("after Invalidate = %q, calls=%d, cache invalidations=%d", got, d.calls, d.invalidations)
	}
	if parse("Node/w1"); d.calls != 2 {
		t.Errorf("one Invalidate re-read discovery %d times", d.calls-1)
	}
	// A failed re-read keeps serving the table it meant to refresh, and
	// stays stale: the next lookup tries again. A miss is then transient.
	r.Invalidate()
	d.err = errors.New("connection refused")
	if got := parse("Node/w1"); got != "Node/w1" {
		t.Errorf("re-read failing = %q, want the kept table's answer", got)
	}
	if got := parse("demo/Gadget/g"); !strings.Contains(got, "connection refused") {
		t.Errorf("re-read failing, unknown kind = %q, want the transient error", got)
	}
	d.err = nil
	if got := parse("Node/w1"); got != "Node/w1" || d.calls != 5 {
		t.Errorf("after the failure = %q, calls=%d; want a new read", got, d.calls)
	}
}

func TestMaxAge(t *testing.T) {
	for _, tt := range []struct {
		opts []target.Option
		age  time.Duration
	}{
		{nil, target.MaxAge},
		{[]target.Option{target.WithMaxAge(5 * time.Second)}, 5 * time.Second},
		{[]target.Option{target.WithMaxAge(0)}, target.MaxAge},
	} {
		clk := clocktesting.NewFakePassiveClock(time.Unix(1000, 0))
		d := &discovery{res: targettest.Resources}
		r := target.NewResolver(d, clk, tt.opts...)
		mustParse := func() {
			t.Helper()
			if _, err := r.Parse("demo/Deployment/app"); err != nil {
				t.Fatal(err)
			}
		}
		mustParse()
		clk.SetTime(clk.Now().Add(tt.age - time.Nanosecond))
		if mustParse(); d.calls != 1 {
			t.Errorf("max age %v: re-read before it, calls=%d", tt.age, d.calls)
		}
		clk.SetTime(clk.Now().Add(time.Nanosecond))
		if mustParse(); d.calls != 2 {
			t.Errorf("max age %v: a known spelling did not re-read at it, calls=%d", tt.age, d.calls)
		}
		if mustParse(); d.calls != 2 {
			t.Errorf("max age %v: re-read twice, calls=%d", tt.age, d.calls)
		}
	}
}

// A group whose discovery failed may serve the kind a spelling names: not
// finding it there is transient, not final.
func TestPartialDiscovery(t *testing.T) {
	failed := &kdiscovery.ErrGroupDiscoveryFailed{Groups: map[schema.GroupVersion]error{
		{Group: "metrics.k8s.io", Version: "v1beta1"}: errors.New("service unavailable"),
	}}
	r := target.NewResolver(&discovery{res: targettest.Resources, err: failed}, nil)
	if k, err := r.Parse("demo/Deployment/app"); err != nil || k.String() != "demo/Deployment.apps/app" {
		t.Errorf("known kind = %v, %v", k, err)
	}
	for _, s := range []string{"demo/PodMetrics/p", "demo/PodMetrics.metrics.k8s.io/p", "demo/podmetrics.*/p"} {
		if _, err := r.Parse(s); err == nil || errors.Is(err, target.ErrInvalid) {
			t.Errorf("Parse(%q) = %v, want a transient error", s, err)
		}
	}
	if _, err := r.Parse("demo/Deployment.batch/app"); !errors.Is(err, target.ErrInvalid) {
		t.Errorf("a group that answered: %v, want ErrInvalid", err)
	}
}

// Lookups race with invalidations and clock steps (run with -race).
func TestConcurrentLookups(t *testing.T) {
	clk := clocktesting.NewFakePassiveClock(time.Unix(1000, 0))
	r := target.NewResolver(targettest.Resources, clk)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for j := range 200 {
				switch {
				case i == 0 && j%10 == 0:
					r.Invalidate()
				case i == 1 && j%10 == 0:
					clk.SetTime(clk.Now().Add(target.MaxAge))
				}
				k, err := r.Parse("payment/routes.other.io/web")
				if err != nil || k.String() != "payment/Route.*/web" {
					t.Errorf("Parse = %v, %v", k, err)
					return
				}
				_ = r.Spelling(k)
			}
		})
	}
	wg.Wait()
}
