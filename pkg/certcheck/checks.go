package certcheck

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/targetlock/targetlock/pkg/admission"
)

// chainVerifies checks that the caBundle verifies the serving chain for
// server authentication, now.
func (v *verifier) chainVerifies(roots *x509.CertPool, chain []*x509.Certificate) {
	inter := x509.NewCertPool()
	for _, ic := range chain[1:] {
		inter.AddCert(ic)
	}
	_, err := chain[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, CurrentTime: v.o.Now(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
	v.add("ca-bundle-verifies-chain", wrap(err, "caBundle does not verify the serving certificate"), "the caBundle verifies the serving certificate chain",
		"the caBundle and the Secret come from different CAs: re-inject the CA (cainjector) or re-issue the certificate from the CA in the caBundle")
}

// namesCovered checks that the leaf's SANs cover every name the API
// server may dial.
func (v *verifier) namesCovered(leaf *x509.Certificate, names []string) {
	var missing []string
	for _, n := range names {
		if leaf.VerifyHostname(n) != nil {
			missing = append(missing, n)
		}
	}
	var err error
	if len(missing) > 0 {
		err = fmt.Errorf("certificate SANs %v do not cover %s", sans(leaf), strings.Join(missing, ", "))
	}
	v.add("subject-alternative-names", err, fmt.Sprintf("SANs cover %s", strings.Join(names, ", ")),
		"add the missing DNS names to the serving Certificate's dnsNames")
}

func (v *verifier) keyMatches(secret *corev1.Secret) {
	_, err := tls.X509KeyPair(secret.Data[corev1.TLSCertKey], secret.Data[corev1.TLSPrivateKeyKey])
	v.add("key-matches-certificate", wrap(err, "tls.key does not match tls.crt"), "tls.key matches tls.crt",
		"re-issue the Secret: its key and certificate do not belong together")
}

// validity checks that the leaf is valid now and for MinValidity yet.
func (v *verifier) validity(leaf *x509.Certificate) {
	o := v.o
	left := leaf.NotAfter.Sub(o.Now())
	var err error
	switch {
	case o.Now().Before(leaf.NotBefore):
		err = fmt.Errorf("not valid before %s", leaf.NotBefore.UTC().Format(time.RFC3339))
	case left <= 0:
		err = fmt.Errorf("expired at %s", leaf.NotAfter.UTC().Format(time.RFC3339))
	case left < o.MinValidity:
		err = fmt.Errorf("expires at %s, in %s: less than --min-validity %s", leaf.NotAfter.UTC().Format(time.RFC3339), left.Round(time.Hour), o.MinValidity)
	}
	v.add("validity", err, fmt.Sprintf("valid until %s (%s left)", leaf.NotAfter.UTC().Format(time.RFC3339), left.Round(time.Hour)),
		"renew the certificate (cert-manager: check renewBefore and the Certificate's events; helm mode: helm upgrade after deleting the Secret)")
}

// certificateReady checks the cert-manager Certificate, if one is named
// and the webhook configuration says cert-manager serves it.
func (v *verifier) certificateReady(vwc *admissionregistrationv1.ValidatingWebhookConfiguration) {
	o := v.o
	switch {
	case o.Certificate == "":
	case vwc.Annotations[InjectCAFromAnnotation] == "":
		v.rs = append(v.rs, Result{Check: "certificate-ready", OK: true, Skipped: true,
			Detail: "skipped: the webhook configuration has no " + InjectCAFromAnnotation + " annotation, so no cert-manager Certificate serves it (certs.mode helm or manual)"})
	default:
		v.add("certificate-ready", certificateReady(v.ctx, v.c, o.SecretNamespace, o.Certificate), fmt.Sprintf("Certificate %s/%s is Ready", o.SecretNamespace, o.Certificate),
			"kubectl describe certificate: check the Issuer and the CertificateRequest's events")
	}
}

// guardedScope reports what a webhook leaves unguarded: selectors that let
// a namespace or a labelled WFE through, rules without WFE CREATEs, or a
// failure policy that admits when the webhook is down.
func guardedScope(w admissionregistrationv1.ValidatingWebhook) error {
	var gaps []string
	if selects(w.NamespaceSelector) {
		gaps = append(gaps, fmt.Sprintf("namespaceSelector %s skips every namespace it does not match", metav1.FormatLabelSelector(w.NamespaceSelector)))
	}
	if selects(w.ObjectSelector) {
		gaps = append(gaps, fmt.Sprintf("objectSelector %s lets a WFE creator opt out with a label", metav1.FormatLabelSelector(w.ObjectSelector)))
	}
	if w.FailurePolicy != nil && *w.FailurePolicy == admissionregistrationv1.Ignore {
		gaps = append(gaps, "failurePolicy Ignore admits every CREATE while the webhook is unreachable")
	}
	if !slices.ContainsFunc(w.Rules, matchesCreates) {
		gaps = append(gaps, "its rules do not match WorkflowExecution CREATEs")
	}
	if len(gaps) == 0 {
		return nil
	}
	return errors.New("unguarded: " + strings.Join(gaps, "; "))
}

// selects reports whether a selector leaves anything out.
func selects(s *metav1.LabelSelector) bool {
	return s != nil && (len(s.MatchLabels) > 0 || len(s.MatchExpressions) > 0)
}

// matchesCreates reports whether r matches WorkflowExecution CREATEs.
func matchesCreates(r admissionregistrationv1.RuleWithOperations) bool {
	return (slices.Contains(r.Operations, admissionregistrationv1.Create) || slices.Contains(r.Operations, admissionregistrationv1.OperationAll)) &&
		(slices.Contains(r.Resources, "workflowexecutions") || slices.Contains(r.Resources, "*")) &&
		(slices.ContainsFunc(r.APIGroups, isExecutionGroup) || slices.Contains(r.APIGroups, "*"))
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

// enforcement reports the mode the webhook configuration says its webhook
// runs in (admission.EnforcementAnnotation; none: enforce, the default).
// Warn mode passes, and says that refusals are then recorded, not enforced.
func (v *verifier) enforcement(vwc *admissionregistrationv1.ValidatingWebhookConfiguration) {
	mode := vwc.Annotations[admission.EnforcementAnnotation]
	e, err := admission.ParseEnforcement(mode)
	detail := "enforce: a second WorkflowExecution for a busy target is refused"
	switch {
	case err != nil:
		err = fmt.Errorf("annotation %s is %q: %w", admission.EnforcementAnnotation, mode, err)
	case e == admission.Warn:
		detail = "warn — refusals are recorded, not enforced (switch with --set webhook.enforcement=enforce)"
	case mode == "":
		detail += " (no " + admission.EnforcementAnnotation + " annotation: the webhook's default)"
	}
	v.add("enforcement", err, detail, "set webhook.enforcement to enforce or warn (helm upgrade), which sets the annotation and the webhook's --enforcement alike")
}
