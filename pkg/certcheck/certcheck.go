// Package certcheck verifies a webhook's serving certificate the way the API
// server will use it: the caBundle of the webhook configuration must verify
// the serving Secret's chain for the name the API server dials, the key must
// match, and the certificate must stay valid for a while yet.
package certcheck

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strings"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/targetlock/targetlock/api/v1alpha1"
)

// Options name what to check.
type Options struct {
	// WebhookConfiguration is the ValidatingWebhookConfiguration's name.
	WebhookConfiguration string
	// SecretNamespace and Secret name the serving certificate's Secret.
	SecretNamespace, Secret string
	// Certificate, if set, names the cert-manager Certificate (in
	// SecretNamespace) that must be Ready. The check is skipped when the
	// webhook configuration has no cert-manager.io/inject-ca-from
	// annotation: such a release (certs.mode helm or manual) has none.
	Certificate string
	// MinValidity is how long the certificate must stay valid from now.
	MinValidity time.Duration
	// DryRunNamespace, if set, is where a server-side dry-run WFE CREATE
	// proves the API server reaches the webhook.
	DryRunNamespace string
	Now             func() time.Time
}

// Result is one named check.
type Result struct {
	Check string `json:"check"`
	OK    bool   `json:"ok"`
	// Skipped checks do not apply to this install; they count as passed.
	Skipped bool   `json:"skipped,omitempty"`
	Detail  string `json:"detail"`
	// Fix says what to do when the check fails.
	Fix string `json:"fix,omitempty"`
}

// Verify runs every check and returns all results; it stops early only
// when a later check has nothing to look at.
func Verify(ctx context.Context, c client.Client, o Options) []Result {
	if o.Now == nil {
		o.Now = time.Now
	}
	v := &verifier{ctx: ctx, c: c, o: o}
	v.run()
	return v.rs
}

// verifier runs the checks in order, each a method, and collects their
// results.
type verifier struct {
	ctx context.Context
	c   client.Client
	o   Options
	rs  []Result
}

// add records a check's result (detail if it passed, the error and fix if
// not) and reports whether it passed.
func (v *verifier) add(check string, err error, detail, fix string) bool {
	r := Result{Check: check, OK: err == nil, Detail: detail}
	if err != nil {
		r.Detail, r.Fix = err.Error(), fix
	}
	v.rs = append(v.rs, r)
	return err == nil
}

func (v *verifier) run() {
	vwc, ok := v.webhookConfiguration()
	if !ok {
		return
	}
	unguarded := guardedScope(vwc.Webhooks[0])
	v.add("guarded-scope", unguarded, "the webhook guards WorkflowExecution CREATEs in every namespace, failing closed",
		"remove the selector or rule change: WorkflowExecutions created where the webhook does not look bypass the per-object claim")
	v.enforcement(vwc)
	cc := vwc.Webhooks[0].ClientConfig
	names, dialed := serverNames(cc)
	roots, ok := v.caBundle(cc.CABundle)
	if !ok {
		return
	}
	secret, ok := v.servingSecret()
	if !ok {
		return
	}
	chain, err := parseChain(secret.Data[corev1.TLSCertKey])
	if !v.add("serving-certificate", err, fmt.Sprintf("subject %q, issued by %q", subject(chain), issuer(chain)), "re-issue the serving certificate") {
		return
	}
	leaf := chain[0]
	v.chainVerifies(roots, chain)
	v.namesCovered(leaf, names)
	v.keyMatches(secret)
	v.validity(leaf)
	v.certificateReady(vwc)
	if v.o.DryRunNamespace != "" {
		detail, err := dryRunCreate(v.ctx, v.c, v.o.DryRunNamespace, guardedGroup(vwc.Webhooks[0]), dialed)
		v.add("dry-run-create", err, detail,
			"check the webhook pods are Ready, the Service selects them, the serving port matches, and NetworkPolicies allow the API server")
	}
}

// webhookConfiguration gets the ValidatingWebhookConfiguration, which
// must have a webhook.
func (v *verifier) webhookConfiguration() (*admissionregistrationv1.ValidatingWebhookConfiguration, bool) {
	name := v.o.WebhookConfiguration
	vwc := &admissionregistrationv1.ValidatingWebhookConfiguration{}
	err := v.c.Get(v.ctx, client.ObjectKey{Name: name}, vwc)
	if err == nil && len(vwc.Webhooks) == 0 {
		err = errors.New("has no webhooks")
	}
	ok := v.add("webhook-configuration", wrap(err, "ValidatingWebhookConfiguration %s", name),
		fmt.Sprintf("ValidatingWebhookConfiguration %s found", name),
		"install the chart, or pass --webhook-configuration with the release's name")
	return vwc, ok
}

// caBundle parses the webhook's caBundle, which must hold a certificate.
func (v *verifier) caBundle(bundle []byte) (*x509.CertPool, bool) {
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(bundle) {
		v.add("ca-bundle", errors.New("caBundle is empty or holds no PEM certificate"), "",
			"cert-manager mode: check the cert-manager.io/inject-ca-from annotation and that cainjector runs; helm/manual mode: set the caBundle")
		return nil, false
	}
	v.add("ca-bundle", nil, fmt.Sprintf("%d CA certificate(s)", len(pemBlocks(bundle))), "")
	return roots, true
}

// servingSecret gets the serving Secret, which must hold a certificate and
// a key.
func (v *verifier) servingSecret() (*corev1.Secret, bool) {
	ns, name := v.o.SecretNamespace, v.o.Secret
	secret := &corev1.Secret{}
	err := v.c.Get(v.ctx, client.ObjectKey{Namespace: ns, Name: name}, secret)
	if err == nil && (len(secret.Data[corev1.TLSCertKey]) == 0 || len(secret.Data[corev1.TLSPrivateKeyKey]) == 0) {
		err = errors.New("lacks tls.crt or tls.key")
	}
	ok := v.add("serving-secret", wrap(err, "Secret %s/%s", ns, name), fmt.Sprintf("Secret %s/%s found", ns, name),
		"check the serving Certificate's secretName (cert-manager mode) or certs.manual.secretName")
	return secret, ok
}

// InjectCAFromAnnotation marks a webhook configuration whose caBundle
// cert-manager's cainjector fills from a Certificate.
const InjectCAFromAnnotation = "cert-manager.io/inject-ca-from"

// OK reports whether every check passed (or was skipped).
func OK(rs []Result) bool {
	for _, r := range rs {
		if !r.OK {
			return false
		}
	}
	return len(rs) > 0
}

// serverNames are the names the certificate must cover: for a Service, the
// name the API server dials (svc.ns.svc) and its fully qualified form; for
// a URL, its host.
func serverNames(cc admissionregistrationv1.WebhookClientConfig) (names []string, dialed string) {
	if s := cc.Service; s != nil {
		d := fmt.Sprintf("%s.%s.svc", s.Name, s.Namespace)
		return []string{d, d + ".cluster.local"}, d
	}
	if cc.URL != nil {
		if u, err := url.Parse(*cc.URL); err == nil {
			h := u.Hostname()
			return []string{h}, net.JoinHostPort(h, u.Port())
		}
	}
	return nil, ""
}

// ExecutionGroups are the groups whose WorkflowExecutions the webhook may
// guard: targetlock's own, and kubernaut's (the kubernaut profile).
var ExecutionGroups = []string{v1alpha1.GroupVersion.Group, KubernautGroup}

// KubernautGroup is the API group of kubernaut's CRDs.
const KubernautGroup = "kubernaut.ai"

func isExecutionGroup(g string) bool { return slices.Contains(ExecutionGroups, g) }

// guardedGroup is the WorkflowExecution group the webhook's rules match.
func guardedGroup(w admissionregistrationv1.ValidatingWebhook) string {
	for _, r := range w.Rules {
		if i := slices.IndexFunc(r.APIGroups, isExecutionGroup); i >= 0 {
			return r.APIGroups[i]
		}
	}
	return v1alpha1.GroupVersion.Group
}

// dryRunCreate sends a WFE of the guarded group, valid under that group's
// schema, whose target only the webhook rejects: a denial naming the
// expected target form proves the API server called it over TLS.
func dryRunCreate(ctx context.Context, c client.Client, ns, group, dialed string) (string, error) {
	workflowRef := map[string]any{"workflowID": "certs-verify"}
	if group == KubernautGroup { // kubernaut's required workflowRef fields
		workflowRef = map[string]any{"workflowId": "certs-verify", "workflowName": "certs-verify", "actionType": "CertsVerify",
			"version": "0.0.0", "executionBundle": "certs-verify"}
	}
	probe := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": group + "/" + v1alpha1.GroupVersion.Version,
		"kind":       "WorkflowExecution",
		"metadata":   map[string]any{"generateName": "certs-verify-", "namespace": ns},
		"spec": map[string]any{
			"targetResource":        "certs-verify/Not-A-Kind/probe",
			"workflowRef":           workflowRef,
			"remediationRequestRef": map[string]any{"name": "certs-verify", "namespace": ns},
		},
	}}
	err := c.Create(ctx, probe, client.DryRunAll)
	switch {
	case err == nil:
		return "", errors.New("a malformed WorkflowExecution was accepted: the webhook was not called (check its rules, namespaceSelector and objectSelector)")
	case strings.Contains(err.Error(), "failed calling webhook"):
		return "", fmt.Errorf("the API server could not call the webhook at %s: %w", dialed, err)
	case strings.Contains(err.Error(), "denied the request"):
		return "the API server called the webhook over TLS (dry run; nothing written)", nil
	default:
		return "", fmt.Errorf("dry-run CREATE failed before reaching the webhook: %w", err)
	}
}
