package security_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/targetlock/targetlock/pkg/admission"
	"github.com/targetlock/targetlock/test/framework/testcert"
)

// mtlsCases: who may call the webhook: the API server, authenticated by its client certificate.
var mtlsCases = []securityCase{
	{"a forged AdmissionReview POSTed straight to the webhook is refused", func(t *testing.T) {
		const victim = "mtls-forged"
		answer, err := postForged(t, victim, nil)
		if err == nil {
			t.Errorf("a caller without a client certificate was answered: %s", answer)
		}
		if l := leaseNaming(t, victim); l != "" {
			t.Errorf("the forged review wrote Lease %s for %s/Deployment/%s", l, tenantB, victim)
		}
		// The control: the port answers the API server's certificate (a
		// review of no object, which claims nothing).
		if answer, err := post(t, []byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"control"}}`), &apiServerClientCert); err != nil || !strings.HasPrefix(answer, "HTTP 200") {
			t.Errorf("the API server's certificate: %s %v", answer, err)
		}
	}},

	{"a client certificate from another CA is refused", func(t *testing.T) {
		const victim = "mtls-other-ca"
		_, crt, key, err := testcert.IssueClient("kube-apiserver", time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		pair, err := tls.X509KeyPair(crt, key)
		if err != nil {
			t.Fatal(err)
		}
		answer, err := postForged(t, victim, &pair)
		if err == nil {
			t.Errorf("a caller with another CA's certificate was answered: %s", answer)
		}
		if l := leaseNaming(t, victim); l != "" {
			t.Errorf("the forged review wrote Lease %s for %s/Deployment/%s", l, tenantB, victim)
		}
	}},

	{"the API server's own calls pass: a tenant's CREATE is admitted", func(t *testing.T) {
		mustCreate(t, as("alice"), newWFE(tenantA, "mtls-own", tenantA+"/Deployment/mtls-own"))
		if leaseNaming(t, "mtls-own") == "" {
			t.Error("the admitted CREATE wrote no Lease")
		}
	}},
}

// postForged POSTs to the webhook, as any pod that reaches its port could,
// an AdmissionReview claiming to come from the orchestrator's
// ServiceAccount for a WFE in tenant-a naming tenant-b's Deployment victim,
// presenting cert if not nil. It returns the answer, or why there is none.
func postForged(t *testing.T, victim string, cert *tls.Certificate) (string, error) {
	t.Helper()
	wfe := newWFE(tenantA, victim, tenantB+"/Deployment/"+victim)
	wfe.UID = types.UID("forged-" + victim)
	wfe.APIVersion, wfe.Kind = "targetlock.io/v1alpha1", "WorkflowExecution"
	raw, err := json.Marshal(wfe)
	if err != nil {
		t.Fatal(err)
	}
	review := admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Request: &admissionv1.AdmissionRequest{
			UID:      types.UID("forged-review-" + victim),
			Kind:     metav1.GroupVersionKind{Group: "targetlock.io", Version: "v1alpha1", Kind: "WorkflowExecution"},
			Resource: metav1.GroupVersionResource{Group: "targetlock.io", Version: "v1alpha1", Resource: "workflowexecutions"},
			Name:     victim, Namespace: tenantA, Operation: admissionv1.Create,
			UserInfo: authenticationv1.UserInfo{Username: orchUser, Groups: []string{"system:serviceaccounts", "system:authenticated"}},
			Object:   runtime.RawExtension{Raw: raw},
		},
	}
	body, err := json.Marshal(review)
	if err != nil {
		t.Fatal(err)
	}
	return post(t, body, cert)
}

// post POSTs body to the webhook's validating path, presenting cert if
// not nil, and returns the answer, or why there is none.
func post(t *testing.T, body []byte, cert *tls.Certificate) (string, error) {
	t.Helper()
	wo := env.Environment.WebhookInstallOptions
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(wo.LocalServingCAData)
	tlsCfg := &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
	if cert != nil {
		tlsCfg.Certificates = []tls.Certificate{*cert}
	}
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: tlsCfg}}
	defer hc.CloseIdleConnections()
	url := "https://" + net.JoinHostPort(wo.LocalServingHost, strconv.Itoa(wo.LocalServingPort)) + admission.Path
	resp, err := hc.Post(url, "application/json", bytes.NewReader(body))
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("HTTP %d %s", resp.StatusCode, answer), nil
}

// leaseNaming is the name of the Lease in the install namespace whose
// target annotation names a Deployment called name, or "". It reads the
// annotation as text: what the test knows by construction.
func leaseNaming(t *testing.T, name string) string {
	t.Helper()
	leases := &coordinationv1.LeaseList{}
	if err := env.Client.List(context.Background(), leases, client.InNamespace(installNS)); err != nil {
		t.Fatal(err)
	}
	for _, l := range leases.Items {
		if tgt := l.Annotations["targetlock.io/target"]; strings.Contains(tgt, "Deployment") && strings.HasSuffix(tgt, "/"+name) {
			return l.Name
		}
	}
	return ""
}
