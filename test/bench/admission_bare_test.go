package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	"k8s.io/apimachinery/pkg/types"
)

func TestBareWebhookAllowsAfterItsOneWrite(t *testing.T) {
	var wrote []string
	fail := false
	b := &bareWebhook{ns: "ns", leases: func(_ context.Context, l *coordinationv1.Lease) error {
		if fail {
			return errors.New("refused")
		}
		wrote = append(wrote, l.Namespace+"/"+l.Name)
		return nil
	}}
	call := func(path string) *admissionv1.AdmissionResponse {
		body, _ := json.Marshal(admissionv1.AdmissionReview{Request: &admissionv1.AdmissionRequest{UID: types.UID("u1")}})
		rec := httptest.NewRecorder()
		b.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, path, bytes.NewReader(body)))
		out := admissionv1.AdmissionReview{}
		if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil || out.Response == nil || out.Request != nil {
			t.Fatalf("%s: answer %q: %v", path, rec.Body.String(), err)
		}
		if out.Response.UID != "u1" {
			t.Fatalf("%s: answered uid %q, want the request's", path, out.Response.UID)
		}
		return out.Response
	}
	if r := call("/none"); !r.Allowed || len(wrote) != 0 {
		t.Fatalf("/none: allowed %v after %d writes; want allowed, no write", r.Allowed, len(wrote))
	}
	if r := call("/write"); !r.Allowed || len(wrote) != 1 || wrote[0] != "ns/bare-u1" {
		t.Fatalf("/write: allowed %v after writes %v; want allowed after ns/bare-u1", r.Allowed, wrote)
	}
	fail = true
	if r := call("/write"); r.Allowed {
		t.Fatal("/write allowed although its Lease CREATE failed")
	}
	rec := httptest.NewRecorder()
	b.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/write", bytes.NewReader([]byte("{}"))))
	if rec.Code != http.StatusBadRequest {
		t.Fatalf("a review without a request: %d, want 400", rec.Code)
	}
}
