package admission_test

import (
	"context"
	"fmt"
	"testing"
)

// BenchmarkAdmit measures one admitted CREATE (inspect, list, claim) on an
// in-memory client: the handler's own cost, without the API server.
func BenchmarkAdmit(b *testing.B) {
	h, _ := newFakeHandler(b, nil)
	ctx := context.Background()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		w := newWFE("demo", fmt.Sprintf("w-%d", i), fmt.Sprintf("demo/Deployment/app-%d", i))
		if resp := h.Handle(ctx, createRequest(w)); !resp.Allowed {
			b.Fatalf("denied: %s", resp.Result.Message)
		}
		i++
	}
}

// BenchmarkDeny measures one denied CREATE on a busy target.
func BenchmarkDeny(b *testing.B) {
	h, _ := newFakeHandler(b, nil)
	ctx := context.Background()
	if resp := h.Handle(ctx, createRequest(newWFE("demo", "owner", "demo/Deployment/app"))); !resp.Allowed {
		b.Fatalf("denied: %s", resp.Result.Message)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if resp := h.Handle(ctx, createRequest(newWFE("demo", fmt.Sprintf("w-%d", i), "demo/Deployment/app"))); resp.Allowed {
			b.Fatal("admitted a second WFE")
		}
		i++
	}
}
