package target_test

import (
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/targetlock/targetlock/api/v1alpha1"
	"github.com/targetlock/targetlock/pkg/target"
)

func TestParse(t *testing.T) {
	tests := []struct {
		in      string
		want    string // canonical form; empty means an error is expected
		wantErr string
	}{
		{in: "demo/Deployment/app", want: "demo/deployment/app"},
		{in: "demo/deployment/app", want: "demo/deployment/app"},
		{in: "Node/worker-1", want: "node/worker-1"},
		{in: "NODE/worker-1.example.com", want: "node/worker-1.example.com"},
		{in: "", wantErr: "got 1"},
		{in: "app", wantErr: "got 1"},
		{in: "a/b/c/d", wantErr: "got 4"},
		{in: "/Deployment/app", wantErr: "empty namespace"},
		{in: "demo//app", wantErr: "empty kind"},
		{in: "demo/Deployment/", wantErr: "empty name"},
		{in: "Node/", wantErr: "empty name"},
		{in: "/worker-1", wantErr: "empty kind"},
		{in: "Demo/Deployment/app", wantErr: "namespace"},
		{in: "demo/Deploy-ment/app", wantErr: "kind must be"},
		{in: "demo/1Deployment/app", wantErr: "kind must be"},
		{in: "demo/Deployment/App", wantErr: "name"},
		{in: "demo/Deployment/ä", wantErr: "name"},
		{in: "démo/Deployment/app", wantErr: "namespace"},
		{in: "demo/Dеployment/app", wantErr: "kind must be"}, // Cyrillic e
		{in: "demo/Deployment/" + strings.Repeat("a", 254), wantErr: "name"},
		{in: "demo/" + strings.Repeat("K", 64) + "/app", wantErr: "kind longer"},
		{in: strings.Repeat("n", 64) + "/Deployment/app", wantErr: "namespace"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			k, err := target.Parse(tt.in)
			if tt.wantErr != "" {
				if err == nil {
					t.Fatalf("Parse(%q) = %v, want error containing %q", tt.in, k, tt.wantErr)
				}
				for _, want := range []string{tt.wantErr, target.Form} {
					if !strings.Contains(err.Error(), want) {
						t.Errorf("Parse(%q) error %q does not contain %q", tt.in, err, want)
					}
				}
				if len(err.Error()) > 400 {
					t.Errorf("error message is %d bytes; it must stay readable", len(err.Error()))
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse(%q): %v", tt.in, err)
			}
			if got := k.String(); got != tt.want {
				t.Errorf("Parse(%q).String() = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestKindIsCaseInsensitive(t *testing.T) {
	a, err := target.New("Deployment", "demo", "app")
	if err != nil {
		t.Fatal(err)
	}
	b, err := target.Parse("demo/DEPLOYMENT/app")
	if err != nil {
		t.Fatal(err)
	}
	if a != b || a.LeaseName() != b.LeaseName() {
		t.Errorf("keys differ by kind case: %v (%s) vs %v (%s)", a, a.LeaseName(), b, b.LeaseName())
	}
}

func TestRemediationAndExecutionAgree(t *testing.T) {
	rr := &v1alpha1.RemediationRequest{Spec: v1alpha1.RemediationRequestSpec{
		TargetResource: v1alpha1.ResourceIdentifier{Kind: "Deployment", Namespace: "demo", Name: "app", APIVersion: "apps/v1"},
	}}
	wfe := &v1alpha1.WorkflowExecution{Spec: v1alpha1.WorkflowExecutionSpec{TargetResource: "demo/deployment/app"}}
	a, err := target.ForRemediation(rr)
	if err != nil {
		t.Fatal(err)
	}
	b, err := target.ForExecution(wfe)
	if err != nil {
		t.Fatal(err)
	}
	if a != b {
		t.Errorf("RR key %v != WFE key %v", a, b)
	}

	cluster := &v1alpha1.RemediationRequest{Spec: v1alpha1.RemediationRequestSpec{
		TargetResource: v1alpha1.ResourceIdentifier{Kind: "Node", Name: "worker-1"},
	}}
	k, err := target.ForRemediation(cluster)
	if err != nil {
		t.Fatal(err)
	}
	if k.String() != "node/worker-1" {
		t.Errorf("cluster-scoped key = %q, want node/worker-1", k)
	}
	if _, err := target.ForRemediation(&v1alpha1.RemediationRequest{}); err == nil {
		t.Error("empty RR target: want error")
	}
}

func TestLeaseName(t *testing.T) {
	// Keys that share a long prefix must not share a Lease (the seed's
	// 16-character truncation did exactly that).
	seen := map[string]string{}
	for _, s := range []string{
		"namespace-a/deployment/app-1", "namespace-a/deployment/app-2",
		"namespace-a/statefulset/app-1", "node/worker-1", "namespace-a/node/worker-1",
	} {
		k, err := target.Parse(s)
		if err != nil {
			t.Fatal(err)
		}
		name := k.LeaseName()
		if other, dup := seen[name]; dup {
			t.Errorf("%q and %q share Lease name %q", s, other, name)
		}
		seen[name] = s
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

// FuzzParse: no input panics; a parsed key formats to a string that parses
// back to the same key; every key's Lease name is a valid DNS-1123 label.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"demo/Deployment/app", "Node/worker-1", "a/b/c/d", "", "/", "ns//x", "é/K/n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		k, err := target.Parse(s)
		if err != nil {
			if !strings.Contains(err.Error(), target.Form) {
				t.Fatalf("error %q does not show the expected form", err)
			}
			return
		}
		back, err := target.Parse(k.String())
		if err != nil || back != k {
			t.Fatalf("round trip of %q: %v, %v (from %v)", s, back, err, k)
		}
		assertLeaseName(t, k)
	})
}

// FuzzNew: the struct form of a target obeys the same rules.
func FuzzNew(f *testing.F) {
	f.Add("Deployment", "demo", "app")
	f.Add("Node", "", "worker-1")
	f.Fuzz(func(t *testing.T, kind, namespace, name string) {
		k, err := target.New(kind, namespace, name)
		if err != nil {
			return
		}
		if back, err := target.Parse(k.String()); err != nil || back != k {
			t.Fatalf("round trip of %v: %v, %v", k, back, err)
		}
		assertLeaseName(t, k)
	})
}
