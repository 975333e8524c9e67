package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/targetlock/targetlock/pkg/admission"
)

// clientCASecret holds the CA of the API server's webhook client
// certificate (hack/e2e/node-up.sh) for webhook.clientAuth.
const clientCASecret = "e2e-apiserver-client-ca"

// webhookPort is the chart's default webhook.port.
const webhookPort = 9443

// clientAuthValues creates the Secret with the CA that signs the API
// server's client certificate and returns the chart values that make the
// webhook require it; none without --webhook-client-ca.
func (e *e2e) clientAuthValues(ctx context.Context) ([]string, error) {
	if e.webhookClientCA == "" {
		return nil, nil
	}
	ca, err := os.ReadFile(e.webhookClientCA)
	if err != nil {
		return nil, err
	}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: e.namespace}}
	if err := e.c.Create(ctx, ns); err != nil && !apierrors.IsAlreadyExists(err) {
		return nil, err
	}
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: e.namespace, Name: clientCASecret}, Data: map[string][]byte{"ca.crt": ca}}
	if err := e.c.Create(ctx, s); err != nil {
		return nil, fmt.Errorf("creating the client CA Secret: %w", err)
	}
	return []string{"webhook.clientAuth.enabled=true", "webhook.clientAuth.caSource=secret", "webhook.clientAuth.caSecret.name=" + clientCASecret}, nil
}

// deleteClientCASecret removes what clientAuthValues created, so that an
// uninstall leaves nothing behind.
func (e *e2e) deleteClientCASecret(ctx context.Context) error {
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: e.namespace, Name: clientCASecret}}
	return client.IgnoreNotFound(e.c.Delete(ctx, s))
}

// verifyMTLS checks, for every Ready webhook pod, that a request straight
// to its port (as any pod could send) is refused in the TLS handshake
// without a client certificate and answered with the API server's. That
// admissions through the API server pass, the storm has shown.
func (e *e2e) verifyMTLS(ctx context.Context) (bool, error) {
	if e.webhookClientCA == "" {
		return false, nil
	}
	apiServer, err := tls.LoadX509KeyPair(e.webhookClientCert, e.webhookClientKey)
	if err != nil {
		return false, err
	}
	pods := &corev1.PodList{}
	if err := e.c.List(ctx, pods, client.InNamespace(e.namespace), client.MatchingLabels{"app.kubernetes.io/component": "webhook"}); err != nil {
		return false, err
	}
	n := 0
	for _, p := range pods.Items {
		if podReady(&p, e.digest) != nil || p.Status.PodIP == "" {
			continue
		}
		addr := net.JoinHostPort(p.Status.PodIP, strconv.Itoa(webhookPort))
		if err := forgedReview(ctx, addr, nil); err == nil || !strings.Contains(err.Error(), "certificate") {
			return false, fmt.Errorf("webhook pod %s without a client certificate: want a TLS certificate error, got %w", p.Name, err)
		}
		if err := forgedReview(ctx, addr, &apiServer); err != nil {
			return false, fmt.Errorf("webhook pod %s with the API server's client certificate: %w", p.Name, err)
		}
		n++
	}
	if n == 0 {
		return false, errors.New("no Ready webhook pod to call")
	}
	step(fmt.Sprintf("mTLS: %d webhook pods refuse a caller without the API server's client certificate", n))
	return true, nil
}

// forgedReview POSTs to the webhook at addr an AdmissionReview that holds
// no object, presenting cert if not nil: the webhook answers it (HTTP 200,
// refusing the object) or the connection fails. Nothing is claimed either way.
func forgedReview(ctx context.Context, addr string, cert *tls.Certificate) error {
	// The server's certificate names the Service, not the pod IP: this
	// checks who the webhook lets in, not who it is.
	cfg := &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12} //nolint:gosec // see above
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg}}
	defer hc.CloseIdleConnections()
	body := `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"e2e-forged","operation":"CREATE",` +
		`"kind":{"group":"targetlock.io","version":"v1alpha1","kind":"WorkflowExecution"},"namespace":"` + stormNS + `",` +
		`"userInfo":{"username":"system:serviceaccount:targetlock-system:targetlock-orchestrator"}}}`
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "https://"+addr+admission.Path, bytes.NewBufferString(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("HTTP %d: %s", resp.StatusCode, answer)
	}
	return nil
}
