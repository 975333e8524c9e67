package target_test

import (
	"errors"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

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
