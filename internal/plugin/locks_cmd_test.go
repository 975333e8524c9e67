package plugin

import (
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/targetlock/targetlock/api/v1alpha1"
)

var (
	locksOnce             sync.Once
	locksShop, locksOther string
)

// locksFixture makes, once, a claim by a running WFE and a fresh lock in
// targetlock-system, on objects in namespace shop, and a lock in another
// release's namespace.
func locksFixture(t *testing.T) (kc, shop, other string) {
	t.Helper()
	env, kc := cluster(t)
	locksOnce.Do(func() {
		ensureNamespace(t, env.Client, DefaultReleaseNamespace)
		locksShop = namespace(t, env.Client, "shop")
		locksOther = namespace(t, env.Client, "rel")
		fresh := time.Now()
		wfe := &v1alpha1.WorkflowExecution{ObjectMeta: metav1.ObjectMeta{Namespace: locksShop, Name: "wfe-run"},
			Spec: v1alpha1.WorkflowExecutionSpec{TargetResource: locksShop + "/Deployment/api", WorkflowRef: v1alpha1.WorkflowRef{WorkflowID: "w"}}}
		claim := leaseFor("cmd-claim", locksShop+"/Deployment/api", locksShop+"/wfe-run", "uid-2", fresh.Add(-2*time.Minute))
		lock := leaseFor("cmd-lock", locksShop+"/Deployment/cart", "orchestrator-0_0123456789abcdef", "", fresh)
		elsewhere := leaseFor("cmd-elsewhere", "Node/n1", "orchestrator-1_fedcba9876543210", "", fresh)
		elsewhere.Namespace = locksOther
		mustCreate(t, env.Client, wfe, claim, lock, elsewhere)
	})
	if locksShop == "" {
		t.Fatal("the locks fixture failed")
	}
	return kc, locksShop, locksOther
}

// A healthy claim lasts until its WFE ends: no "ago", no EXPIRED; a fresh
// lock says when it expires.
func TestLocksCommandShowsHolders(t *testing.T) {
	kc, shop, _ := locksFixture(t)
	r := against(kc, "locks", "--target-namespace", shop)
	if r.code != ExitOK {
		t.Fatalf("locks: %d %v %s", r.code, r.err, r.errOut)
	}
	claimRow := rowOf(t, r.out, shop+"/Deployment/api")
	for _, bad := range []string{"ago", "EXPIRED"} {
		if strings.Contains(claimRow, bad) {
			t.Errorf("a healthy claim shows %q:\n%s", bad, r.out)
		}
	}
	for row, want := range map[string][]string{
		claimRow:                                 {"until the WFE ends", "WorkflowExecution " + shop + "/wfe-run", "Pending"},
		rowOf(t, r.out, shop+"/Deployment/cart"): {"Pod orchestrator-0", "expires in"},
	} {
		for _, w := range want {
			if !strings.Contains(row, w) {
				t.Errorf("row lacks %q:\n%s", w, row)
			}
		}
	}
}

// -n is the release's namespace (default targetlock-system), -A every
// release's; --target-namespace keeps one namespace's objects; the
// deprecated --lease-namespace keeps its old meaning.
func TestLocksCommandNamespaces(t *testing.T) {
	kc, shop, other := locksFixture(t)
	if r := against(kc, "locks"); strings.Contains(r.out, "Node/n1") || !strings.Contains(r.out, shop+"/Deployment/api") {
		t.Errorf("-n defaults to targetlock-system:\n%s", r.out)
	}
	r := against(kc, "locks", "-A", "--no-headers")
	if !strings.Contains(r.out, "Node/n1") || strings.Contains(r.out, "TARGET") || !strings.Contains(r.out, other+" ") {
		t.Errorf("-A --no-headers: want every release, no header, a namespace column:\n%s", r.out)
	}
	if r = against(kc, "locks", "-n", other, "-o", "name"); strings.TrimSpace(r.out) != "lease.coordination.k8s.io/cmd-elsewhere" {
		t.Errorf("-n %s -o name: %q", other, r.out)
	}
	if list := decodeList(t, against(kc, "locks", "--target-namespace", shop, "-o", "json").out); len(list.Items) != 2 {
		t.Errorf("-o json: %d items, want 2", len(list.Items))
	}
	if r = against(kc, "locks", "-n", shop); !strings.Contains(r.errOut, "--target-namespace") {
		t.Errorf("-n naming no release gives no hint: %q", r.errOut)
	}
	if r = runPlugin("locks", "--help"); !strings.Contains(r.out, "--target-namespace") || r.errOut != "" || strings.Contains(r.out, "--lease-namespace") {
		t.Errorf("help goes to stdout and hides the deprecated flag:\nstdout %q\nstderr %q", r.out, r.errOut)
	}
	r = against(kc, "locks", "--lease-namespace", DefaultReleaseNamespace, "-n", shop, "-o", "name")
	if r.code != ExitOK || !strings.Contains(r.errOut, "deprecated") || r.out != "lease.coordination.k8s.io/cmd-claim\nlease.coordination.k8s.io/cmd-lock\n" {
		t.Errorf("--lease-namespace: %d %v\nstdout %q\nstderr %q", r.code, r.err, r.out, r.errOut)
	}
}

// rowOf is the table line of target.
func rowOf(t *testing.T, table, target string) string {
	t.Helper()
	for _, l := range strings.Split(table, "\n") {
		if strings.HasPrefix(l, target+" ") {
			return l
		}
	}
	t.Fatalf("no row for %s:\n%s", target, table)
	return ""
}
