package plugin

import (
	"encoding/json"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/targetlock/targetlock/internal/version"
)

func deployment(ns, name, component, ver, image string) *appsv1.Deployment {
	labels := map[string]string{"app.kubernetes.io/name": "targetlock", componentLabel: component, versionLabel: ver}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: labels},
		Spec: appsv1.DeploymentSpec{Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: component, Image: image}}}}},
	}
}

// version prints the client's, the API server's and the release's.
func TestVersion(t *testing.T) {
	env, kc := cluster(t)
	ns := namespace(t, env.Client, "release")
	mustCreate(t, env.Client,
		deployment(ns, "tl-webhook", "webhook", "1.2.3", "example.com/targetlock:1.2.3"),
		deployment(ns, "tl-orchestrator", "orchestrator", "1.2.3", "example.com/targetlock:1.2.3"))
	r := against(kc, "version", "-n", ns)
	for _, want := range []string{"Client Version: " + version.Version, "Kubernetes Version: v1.", "Webhook Version: 1.2.3 (Deployment " + ns + "/tl-webhook",
		"Orchestrator Version: 1.2.3", "example.com/targetlock:1.2.3"} {
		if r.code != ExitOK || !strings.Contains(r.out, want) {
			t.Errorf("version lacks %q (%d %v):\n%s", want, r.code, r.err, r.out)
		}
	}
	r = against(kc, "version", "-n", "no-release-here", "-o", "json")
	var v Versions
	if err := json.Unmarshal([]byte(r.out), &v); err != nil || r.code != ExitOK || len(v.Unreadable) != 1 || v.KubernetesVersion == "" {
		t.Errorf("no release: %d %v %+v\n%s", r.code, err, v, r.out)
	}
	r = runPlugin("version", "--client", "-o", "yaml")
	if r.code != ExitOK || strings.TrimSpace(r.out) != "clientVersion: "+version.Version {
		t.Errorf("--client -o yaml: %q", r.out)
	}
}
