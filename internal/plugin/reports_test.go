package plugin

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/targetlock/targetlock/pkg/admission"
	"github.com/targetlock/targetlock/pkg/policyreport"
	"github.com/targetlock/targetlock/test/framework/testenv"
)

// denials --from reports lists what the webhook's writer put in the
// namespace's Policy Report: a refusal with its reason, a warn-mode
// admission as WouldRefuse, a repeat as one row with its count.
func TestDenialsFromReports(t *testing.T) {
	env, err := testenv.Start(testenv.Options{CRDPaths: []string{filepath.Join("..", "..", "pkg", "policyreport", "testdata", "openreports.io_reports.yaml")}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Stop() })
	kc := filepath.Join(t.TempDir(), "kubeconfig")
	if err := env.Kubeconfig(kc); err != nil {
		t.Fatal(err)
	}
	ns := namespace(t, env.Client, "reports")
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	w := policyreport.NewWriter(env.Client, nil)
	go func() { _ = w.Start(ctx) }()
	refused := policyreport.Entry{Time: time.Now(), Namespace: ns, WorkflowExecution: "second", APIVersion: "targetlock.io/v1alpha1",
		Reason: admission.ReasonResourceBusy, Target: ns + "/Deployment.apps/checkout", Holder: ns + "/first", Requester: "alice",
		Message: "ResourceBusy: the object is busy"}
	warned := refused
	warned.WorkflowExecution, warned.Warned, warned.Requester = "third", true, "bob"
	w.Record(refused)
	w.Record(refused)
	w.Record(warned)

	testenv.Eventually(t, 20*time.Second, func() error {
		r := against(kc, "denials", "-n", ns, "--from", "reports", "-o", "wide")
		switch {
		case r.code != ExitOK:
			return r.err
		case !strings.Contains(r.out, "ResourceBusy") || !strings.Contains(r.out, ns+"/second") || !strings.Contains(r.out, "report.openreports.io/targetlock-admission"):
			return fmt.Errorf("no refusal row:\n%s", r.out)
		case !strings.Contains(r.out, admission.ReasonWouldRefuse) || !strings.Contains(r.out, ns+"/third"):
			return fmt.Errorf("no warn-mode row:\n%s", r.out)
		}
		return nil
	})
	list := decodeList(t, against(kc, "denials", "-n", ns, "--from", "reports", "-o", "json").out)
	if len(list.Items) != 2 {
		t.Fatalf("%d rows, want 2 (the repeat counted, not listed twice)", len(list.Items))
	}
	for _, it := range list.Items {
		if wfe := it.Object["workflowExecution"]; wfe == ns+"/second" && it.Object["count"] != int64(2) {
			t.Errorf("the refusal made twice has count %v, want 2", it.Object["count"])
		}
	}
}

// Without the Report CRD, --from reports says so and what to use instead;
// a source it does not know is a usage error.
func TestDenialsFromReportsWithoutTheCRD(t *testing.T) {
	_, kc := cluster(t)
	r := against(kc, "denials", "-A", "--from", "reports")
	if r.code != ExitFailed || !strings.Contains(r.err.Error(), "CRD is not installed") || !strings.Contains(r.err.Error(), "--from events") {
		t.Errorf("exit %d, %v; want 1 naming the missing CRD and --from events", r.code, r.err)
	}
	if r := against(kc, "denials", "-A", "--from", "audit"); r.code != ExitUsage {
		t.Errorf("--from audit: exit %d, want %d", r.code, ExitUsage)
	}
}
