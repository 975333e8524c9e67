package admission_test

import (
	"context"
	"encoding/json"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"

	"github.com/targetlock/targetlock/api/v1alpha1"
	"github.com/targetlock/targetlock/pkg/target/targettest"
)

// FuzzHandle feeds raw object bytes through decode and decide. The handler
// must never panic, must answer every request, and may admit a CREATE only
// for an object whose target parses.
func FuzzHandle(f *testing.F) {
	for _, tc := range badInputs() {
		f.Add(tc.raw, false)
	}
	good, _ := json.Marshal(newWFE("demo", "w", "demo/Deployment/app", withToken("tok"), withRR("rr")))
	f.Add(good, false)
	f.Add(good, true)
	f.Add([]byte(`{"metadata":{"name":"w","namespace":"demo","uid":"u"},"spec":{"targetResource":"Node/n1"}}`), false)
	f.Add([]byte(`null`), false)
	f.Add([]byte(`[]`), true)

	h, _ := newFakeHandler(f, nil)
	f.Fuzz(func(t *testing.T, raw []byte, update bool) {
		req := request(admissionv1.Create, "demo", "w", raw)
		if update {
			req.Operation = admissionv1.Update
			req.OldObject.Raw = good
		}
		resp := h.Handle(context.Background(), req)
		if resp.Result == nil {
			t.Fatalf("no result")
		}
		if !resp.Allowed {
			if resp.Result.Message == "" || resp.Result.Code < 400 {
				t.Fatalf("a denial without message or 4xx/5xx code: %+v", resp.Result)
			}
			return
		}
		if update {
			return // not guarded
		}
		var w v1alpha1.WorkflowExecution
		if err := json.Unmarshal(raw, &w); err != nil {
			t.Fatalf("admitted an object that does not decode: %v", err)
		}
		if _, err := targettest.Resolver().ForExecution(&w); err != nil {
			t.Fatalf("admitted a CREATE with a malformed target: %v", err)
		}
	})
}
