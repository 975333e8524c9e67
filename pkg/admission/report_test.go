package admission_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/targetlock/targetlock/pkg/admission"
	"github.com/targetlock/targetlock/pkg/policyreport"
	"github.com/targetlock/targetlock/test/framework/testenv"
)

// wantReported waits until ns's Report holds one result for wfe with the
// given reason and result, and returns it.
func wantReported(t *testing.T, f *fixture, ns, wfe, reason, result string) policyreport.Denial {
	t.Helper()
	var found policyreport.Denial
	testenv.Eventually(t, 20*time.Second, func() error {
		ds, err := policyreport.List(context.Background(), f.env.Client, ns)
		if err != nil {
			return err
		}
		for _, d := range ds {
			if d.WorkflowExecution == wfe && d.Reason == reason && d.Result == result {
				found = d
				return nil
			}
		}
		return fmt.Errorf("no %s result %s for %s in %s's Report: %+v", result, reason, wfe, ns, ds)
	})
	return found
}

// TestDenialIsReported: a refused CREATE becomes a fail result in the
// Report of the requester's namespace, naming target, holder and
// requester; the admitted first CREATE is no result.
func TestDenialIsReported(t *testing.T) {
	f, ns := inNewNamespace(t)
	tgt := ns + "/StatefulSet/db"
	mustAdmit(t, f, newWFE(ns, "owner", tgt))
	mustDeny(t, f, newWFE(ns, "intruder", tgt), admission.ReasonResourceBusy)
	d := wantReported(t, f, ns, "intruder", admission.ReasonResourceBusy, policyreport.ResultFail)
	if d.Target != ns+"/StatefulSet.apps/db" || d.Holder != ns+"/owner" || d.Requester != testenv.AdminUser || d.Count != 1 || d.Namespace != ns {
		t.Errorf("result %+v", d)
	}
	ds, err := policyreport.List(context.Background(), f.env.Client, ns)
	if err != nil || len(ds) != 1 {
		t.Errorf("want only the refusal reported: %+v, %v", ds, err)
	}
}

// TestWarnedIsReported: in warn mode the admitted second CREATE is a warn
// result, and a third one of the same target, reason and requester counts
// on it.
func TestWarnedIsReported(t *testing.T) {
	f, ns := inWarnNamespace(t)
	c, _ := warnClient(t, f, "")
	tgt := ns + "/StatefulSet/db"
	mustCreate(t, c, newWFE(ns, "first", tgt))
	mustCreate(t, c, newWFE(ns, "second", tgt))
	wantReported(t, f, ns, "second", admission.ReasonResourceBusy, policyreport.ResultWarn)
	mustCreate(t, c, newWFE(ns, "third", tgt))
	d := wantReported(t, f, ns, "third", admission.ReasonResourceBusy, policyreport.ResultWarn)
	if d.Count != 2 || d.Holder != ns+"/first" {
		t.Errorf("result %+v, want count 2, holder %s/first", d, ns)
	}
}
