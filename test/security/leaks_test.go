package security_test

import (
	"bytes"
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/targetlock/targetlock/internal/plugin"
)

// escapes is what an attacker aims at an admin's terminal: clear the
// screen, retitle the window, ring the bell, reverse the text.
const escapes = "\x1b[2J\x1b]0;pwned\x07\u202e\ttab\nnewline"

// leakCases: what one tenant may learn of, or do to, another through the periphery.
var leakCases = []securityCase{
	{"kubectl targetlock locks prints no control characters", func(t *testing.T) {
		// A Lease as a forged AdmissionReview could have had the webhook
		// write it: the holder (the WFE's name) and target are the
		// attacker's text.
		now := metav1.NewMicroTime(time.Now())
		mustCreate(t, env.Client, &coordinationv1.Lease{
			ObjectMeta: metav1.ObjectMeta{Namespace: installNS, Name: "targetlock-escape",
				Labels:      map[string]string{"app.kubernetes.io/managed-by": "targetlock"},
				Annotations: map[string]string{"targetlock.io/target": tenantA + "/Deployment/web" + escapes, "targetlock.io/claim-uid": "uid" + escapes}},
			Spec: coordinationv1.LeaseSpec{HolderIdentity: ptr.To(tenantA + "/wfe" + escapes), RenewTime: &now, AcquireTime: &now, LeaseDurationSeconds: ptr.To[int32](30)},
		})
		ls, err := plugin.ListLocks(context.Background(), env.Client, installNS, "")
		if err != nil {
			t.Fatal(err)
		}
		var table, wide bytes.Buffer
		if err := plugin.PrintLocks(&table, ls, "", time.Now()); err != nil {
			t.Fatal(err)
		}
		if err := plugin.PrintLocks(&wide, ls, "wide", time.Now()); err != nil {
			t.Fatal(err)
		}
		var data bytes.Buffer // JSON is data: exact, and escaped by encoding
		if err := plugin.PrintLocks(&data, ls, "json", time.Now()); err != nil {
			t.Fatal(err)
		}
		var back []plugin.Lock
		if err := json.Unmarshal(data.Bytes(), &back); err != nil || !slices.ContainsFunc(back, func(l plugin.Lock) bool { return l.Holder == tenantA+"/wfe"+escapes }) {
			t.Errorf("JSON lost the exact holder (%v):\n%s", err, data.String())
		}
		for format, out := range map[string]string{"table": table.String(), "wide": wide.String()} {
			if !strings.Contains(out, "pwned") {
				t.Fatalf("%s does not list the Lease:\n%s", format, out)
			}
			for _, bad := range []string{"\x1b", "\x07", "\u202e", "tab\t", "\nnewline"} {
				if strings.Contains(out, bad) {
					t.Errorf("%s carries %q:\n%q", format, bad, out)
				}
			}
		}
	}},
}
