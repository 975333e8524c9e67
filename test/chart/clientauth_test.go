package chart_test

import (
	"encoding/json"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// webhookPod is the webhook Deployment's container args and volumes.
func webhookPod(t *testing.T, objs []*unstructured.Unstructured) (args []string, volumes []any, mounts []any) {
	t.Helper()
	d := find(objs, "Deployment", "tl-targetlock-webhook")
	if d == nil {
		t.Fatal("no webhook Deployment")
	}
	containers, _, _ := unstructured.NestedSlice(d.Object, "spec", "template", "spec", "containers")
	c := containers[0].(map[string]any)
	for _, a := range c["args"].([]any) {
		args = append(args, a.(string))
	}
	volumes, _, _ = unstructured.NestedSlice(d.Object, "spec", "template", "spec", "volumes")
	return args, volumes, c["volumeMounts"].([]any)
}

func toJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func named(list []any, name string) map[string]any {
	for _, v := range list {
		if m := v.(map[string]any); m["name"] == name {
			return m
		}
	}
	return nil
}

// webhook.clientAuth: off by default; on, the webhook requires a client
// certificate signed by the CA of the Secret, ConfigMap or cert-manager
// Issuer named, and only the CA certificate is mounted.
func TestClientAuth(t *testing.T) {
	args, volumes, _ := webhookPod(t, mustRender(t, nil))
	if contains(args, "--client-ca-file=/client-ca/ca.crt") || named(volumes, "client-ca") != nil {
		t.Errorf("client auth on by default: %v", args)
	}
	for source, want := range map[string]string{
		"secret":       `{"secret":{"items":[{"key":"ca.pem","path":"ca.crt"}],"secretName":"apiserver-ca"}}`,
		"configMap":    `{"configMap":{"items":[{"key":"ca.pem","path":"ca.crt"}],"name":"apiserver-ca"}}`,
		"cert-manager": `{"secret":{"items":[{"key":"ca.crt","path":"ca.crt"}],"secretName":"tl-targetlock-ca"}}`,
	} {
		ref := map[string]any{"name": "apiserver-ca", "key": "ca.pem"}
		objs := mustRender(t, map[string]any{"webhook": map[string]any{"clientAuth": map[string]any{
			"enabled": true, "caSource": source, "caSecret": ref, "caConfigMap": ref}}})
		args, volumes, mounts := webhookPod(t, objs)
		if !contains(args, "--client-ca-file=/client-ca/ca.crt") {
			t.Errorf("%s: webhook args lack --client-ca-file: %v", source, args)
		}
		if m := named(mounts, "client-ca"); m == nil || m["mountPath"] != "/client-ca" || m["readOnly"] != true {
			t.Errorf("%s: client-ca mount: %v", source, m)
		}
		v := named(volumes, "client-ca")
		delete(v, "name")
		if got := toJSON(t, v); got != want {
			t.Errorf("%s: client-ca volume %s, want %s", source, got, want)
		}
		checkClientCertificate(t, source, find(objs, "Certificate", "tl-targetlock-apiserver-client"))
	}
	for name, vals := range map[string]map[string]any{
		"a Secret without a name": {"webhook": map[string]any{"clientAuth": map[string]any{"enabled": true}}},
		"cert-manager CA without cert-manager": {"certs": map[string]any{"mode": "helm"},
			"webhook": map[string]any{"clientAuth": map[string]any{"enabled": true, "caSource": "cert-manager"}}},
		"an unknown source": {"webhook": map[string]any{"clientAuth": map[string]any{"enabled": true, "caSource": "vault"}}},
	} {
		if _, err := render(t, vals); err == nil {
			t.Errorf("%s: rendered", name)
		}
	}
}

// checkClientCertificate: the API server's client Certificate is rendered
// only when cert-manager is the CA source, for client auth alone.
func checkClientCertificate(t *testing.T, source string, crt *unstructured.Unstructured) {
	t.Helper()
	if (crt != nil) != (source == "cert-manager") {
		t.Errorf("%s: API server client Certificate rendered = %v", source, crt != nil)
	}
	if crt == nil {
		return
	}
	s := toYAML(t, crt.Object)
	for _, want := range []string{"- client auth", "name: tl-targetlock-ca", "secretName: tl-targetlock-apiserver-client"} {
		if !strings.Contains(s, want) {
			t.Errorf("client Certificate lacks %q:\n%s", want, s)
		}
	}
	if strings.Contains(s, "server auth") {
		t.Errorf("client Certificate usable for serving:\n%s", s)
	}
}

// networkPolicy.webhookFrom: the webhook port open to all by default (the
// API server's address is not selectable), to the peers named if set.
func TestWebhookPortSources(t *testing.T) {
	rule := func(vals map[string]any) map[string]any {
		np := find(mustRender(t, vals), "NetworkPolicy", "tl-targetlock-webhook")
		ingress, _, _ := unstructured.NestedSlice(np.Object, "spec", "ingress")
		for _, r := range ingress {
			if strings.Contains(toYAML(t, r), "port: 9443") {
				return r.(map[string]any)
			}
		}
		t.Fatal("no ingress rule for the webhook port")
		return nil
	}
	if from, ok := rule(nil)["from"]; ok {
		t.Errorf("webhook port restricted by default: %v", from)
	}
	peers := []any{map[string]any{"ipBlock": map[string]any{"cidr": "10.0.0.0/24"}}}
	got := rule(map[string]any{"networkPolicy": map[string]any{"webhookFrom": peers}})
	if s := toJSON(t, got["from"]); s != `[{"ipBlock":{"cidr":"10.0.0.0/24"}}]` {
		t.Errorf("webhook port from %s, want the control plane's ipBlock", s)
	}
}
