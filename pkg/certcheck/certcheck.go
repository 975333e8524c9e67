// Package certcheck verifies a webhook's serving certificate the way the API
// server will use it: the caBundle of the webhook configuration must verify
// the serving Secret's chain for the name the API server dials, the key must
// match, and the certificate must stay valid for a while yet.
package certcheck

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strings"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
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
	var rs []Result
	add := func(check string, err error, detail, fix string) bool {
		r := Result{Check: check, OK: err == nil, Detail: detail}
		if err != nil {
			r.Detail, r.Fix = err.Error(), fix
		}
		rs = append(rs, r)
		return err == nil
	}

	vwc := &admissionregistrationv1.ValidatingWebhookConfiguration{}
	err := c.Get(ctx, client.ObjectKey{Name: o.WebhookConfiguration}, vwc)
	if err == nil && len(vwc.Webhooks) == 0 {
		err = errors.New("has no webhooks")
	}
	if !add("webhook-configuration", wrap(err, "ValidatingWebhookConfiguration %s", o.WebhookConfiguration),
		fmt.Sprintf("ValidatingWebhookConfiguration %s found", o.WebhookConfiguration),
		"install the chart, or pass --webhook-configuration with the release's name") {
		return rs
	}
	unguarded := guardedScope(vwc.Webhooks[0])
	add("guarded-scope", unguarded, "the webhook guards WorkflowExecution CREATEs in every namespace, failing closed",
		"remove the selector or rule change: WorkflowExecutions created where the webhook does not look bypass the per-object claim")
	cc := vwc.Webhooks[0].ClientConfig
	names, dialed := serverNames(cc)

	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(cc.CABundle) {
		add("ca-bundle", errors.New("caBundle is empty or holds no PEM certificate"), "",
			"cert-manager mode: check the cert-manager.io/inject-ca-from annotation and that cainjector runs; helm/manual mode: set the caBundle")
		return rs
	}
	add("ca-bundle", nil, fmt.Sprintf("%d CA certificate(s)", len(pemBlocks(cc.CABundle))), "")

	secret := &corev1.Secret{}
	err = c.Get(ctx, client.ObjectKey{Namespace: o.SecretNamespace, Name: o.Secret}, secret)
	if err == nil && (len(secret.Data[corev1.TLSCertKey]) == 0 || len(secret.Data[corev1.TLSPrivateKeyKey]) == 0) {
		err = errors.New("lacks tls.crt or tls.key")
	}
	if !add("serving-secret", wrap(err, "Secret %s/%s", o.SecretNamespace, o.Secret), fmt.Sprintf("Secret %s/%s found", o.SecretNamespace, o.Secret),
		"check the serving Certificate's secretName (cert-manager mode) or certs.manual.secretName") {
		return rs
	}
	chain, err := parseChain(secret.Data[corev1.TLSCertKey])
	if !add("serving-certificate", err, fmt.Sprintf("subject %q, issued by %q", subject(chain), issuer(chain)), "re-issue the serving certificate") {
		return rs
	}
	leaf := chain[0]

	inter := x509.NewCertPool()
	for _, ic := range chain[1:] {
		inter.AddCert(ic)
	}
	_, err = leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, CurrentTime: o.Now(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
	add("ca-bundle-verifies-chain", wrap(err, "caBundle does not verify the serving certificate"), "the caBundle verifies the serving certificate chain",
		"the caBundle and the Secret come from different CAs: re-inject the CA (cainjector) or re-issue the certificate from the CA in the caBundle")

	var missing []string
	for _, n := range names {
		if leaf.VerifyHostname(n) != nil {
			missing = append(missing, n)
		}
	}
	err = nil
	if len(missing) > 0 {
		err = fmt.Errorf("certificate SANs %v do not cover %s", sans(leaf), strings.Join(missing, ", "))
	}
	add("subject-alternative-names", err, fmt.Sprintf("SANs cover %s", strings.Join(names, ", ")),
		"add the missing DNS names to the serving Certificate's dnsNames")

	_, err = tls.X509KeyPair(secret.Data[corev1.TLSCertKey], secret.Data[corev1.TLSPrivateKeyKey])
	add("key-matches-certificate", wrap(err, "tls.key does not match tls.crt"), "tls.key matches tls.crt",
		"re-issue the Secret: its key and certificate do not belong together")

	left := leaf.NotAfter.Sub(o.Now())
	err = nil
	switch {
	case o.Now().Before(leaf.NotBefore):
		err = fmt.Errorf("not valid before %s", leaf.NotBefore.UTC().Format(time.RFC3339))
	case left <= 0:
		err = fmt.Errorf("expired at %s", leaf.NotAfter.UTC().Format(time.RFC3339))
	case left < o.MinValidity:
		err = fmt.Errorf("expires at %s, in %s: less than --min-validity %s", leaf.NotAfter.UTC().Format(time.RFC3339), left.Round(time.Hour), o.MinValidity)
	}
	add("validity", err, fmt.Sprintf("valid until %s (%s left)", leaf.NotAfter.UTC().Format(time.RFC3339), left.Round(time.Hour)),
		"renew the certificate (cert-manager: check renewBefore and the Certificate's events; helm mode: helm upgrade after deleting the Secret)")

	switch {
	case o.Certificate == "":
	case vwc.Annotations[InjectCAFromAnnotation] == "":
		rs = append(rs, Result{Check: "certificate-ready", OK: true, Skipped: true,
			Detail: "skipped: the webhook configuration has no " + InjectCAFromAnnotation + " annotation, so no cert-manager Certificate serves it (certs.mode helm or manual)"})
	default:
		add("certificate-ready", certificateReady(ctx, c, o.SecretNamespace, o.Certificate), fmt.Sprintf("Certificate %s/%s is Ready", o.SecretNamespace, o.Certificate),
			"kubectl describe certificate: check the Issuer and the CertificateRequest's events")
	}
	if o.DryRunNamespace != "" {
		detail, err := dryRunCreate(ctx, c, o.DryRunNamespace, guardedGroup(vwc.Webhooks[0]), dialed)
		add("dry-run-create", err, detail,
			"check the webhook pods are Ready, the Service selects them, the serving port matches, and NetworkPolicies allow the API server")
	}
	return rs
}

// guardedScope reports what a webhook leaves unguarded: selectors that let
// a namespace or a labelled WFE through, rules without WFE CREATEs, or a
// failure policy that admits when the webhook is down.
func guardedScope(w admissionregistrationv1.ValidatingWebhook) error {
	var gaps []string
	if s := w.NamespaceSelector; s != nil && (len(s.MatchLabels) > 0 || len(s.MatchExpressions) > 0) {
		gaps = append(gaps, fmt.Sprintf("namespaceSelector %s skips every namespace it does not match", metav1.FormatLabelSelector(s)))
	}
	if s := w.ObjectSelector; s != nil && (len(s.MatchLabels) > 0 || len(s.MatchExpressions) > 0) {
		gaps = append(gaps, fmt.Sprintf("objectSelector %s lets a WFE creator opt out with a label", metav1.FormatLabelSelector(s)))
	}
	if w.FailurePolicy != nil && *w.FailurePolicy == admissionregistrationv1.Ignore {
		gaps = append(gaps, "failurePolicy Ignore admits every CREATE while the webhook is unreachable")
	}
	creates := false
	for _, r := range w.Rules {
		if (slices.Contains(r.Operations, admissionregistrationv1.Create) || slices.Contains(r.Operations, admissionregistrationv1.OperationAll)) &&
			(slices.Contains(r.Resources, "workflowexecutions") || slices.Contains(r.Resources, "*")) &&
			(slices.ContainsFunc(r.APIGroups, isExecutionGroup) || slices.Contains(r.APIGroups, "*")) {
			creates = true
		}
	}
	if !creates {
		gaps = append(gaps, "its rules do not match WorkflowExecution CREATEs")
	}
	if len(gaps) == 0 {
		return nil
	}
	return errors.New("unguarded: " + strings.Join(gaps, "; "))
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

func certificateReady(ctx context.Context, c client.Client, ns, name string) error {
	cert := &unstructured.Unstructured{}
	cert.SetAPIVersion("cert-manager.io/v1")
	cert.SetKind("Certificate")
	if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, cert); err != nil {
		return fmt.Errorf("certificate %s/%s: %w", ns, name, err)
	}
	conds, _, _ := unstructured.NestedSlice(cert.Object, "status", "conditions")
	for _, raw := range conds {
		cond, _ := raw.(map[string]any)
		if cond["type"] == "Ready" {
			if cond["status"] == "True" {
				return nil
			}
			return fmt.Errorf("certificate %s/%s is not Ready: %v", ns, name, cond["message"])
		}
	}
	return fmt.Errorf("certificate %s/%s has no Ready condition yet", ns, name)
}

func parseChain(data []byte) ([]*x509.Certificate, error) {
	var chain []*x509.Certificate
	for _, b := range pemBlocks(data) {
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("tls.crt: %w", err)
		}
		chain = append(chain, c)
	}
	if len(chain) == 0 {
		return nil, errors.New("tls.crt holds no PEM certificate")
	}
	return chain, nil
}

func pemBlocks(data []byte) []*pem.Block {
	var blocks []*pem.Block
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			return blocks
		}
		if b.Type == "CERTIFICATE" {
			blocks = append(blocks, b)
		}
	}
}

func sans(c *x509.Certificate) []string {
	out := append([]string{}, c.DNSNames...)
	for _, ip := range c.IPAddresses {
		out = append(out, ip.String())
	}
	return out
}

func subject(chain []*x509.Certificate) string { return chain[0].Subject.CommonName }
func issuer(chain []*x509.Certificate) string  { return chain[0].Issuer.CommonName }

func wrap(err error, format string, args ...any) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%s: %w", fmt.Sprintf(format, args...), err)
}
