package main

import (
	"bytes"
	"context"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/targetlock/targetlock/api/v1alpha1"
)

// syncBuffer lets the test read what run prints while run is still going.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func TestDemoServesAKubeconfigThatWorks(t *testing.T) {
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	ctx, cancel := context.WithCancel(context.Background())
	out := &syncBuffer{}
	done := make(chan error, 1)
	go func() { done <- run(ctx, options{kubeconfig: kubeconfig}, out) }()

	deadline := time.Now().Add(60 * time.Second)
	for !bytes.Contains([]byte(out.String()), []byte("kubeconfig: ")) {
		select {
		case err := <-done:
			t.Fatalf("demo stopped early: %v\n%s", err, out)
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("demo did not come up:\n%s", out)
		}
	}

	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.New(cfg, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := v1alpha1.AddToScheme(c.Scheme()); err != nil {
		t.Fatal(err)
	}
	if err := c.List(context.Background(), &v1alpha1.RemediationRequestList{}); err != nil {
		t.Errorf("listing RRs with the demo kubeconfig: %v", err)
	}

	cancel()
	if err := <-done; err != nil {
		t.Errorf("demo did not stop cleanly: %v\n%s", err, out)
	}
	if !bytes.Contains([]byte(out.String()), []byte("stopping the control plane")) {
		t.Errorf("demo did not report stopping:\n%s", out)
	}
}
