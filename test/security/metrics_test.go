package security_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/targetlock/targetlock/internal/kubeflags"
	"github.com/targetlock/targetlock/internal/manager"
	"github.com/targetlock/targetlock/test/framework/testenv"
)

// metricsCase: /metrics, served as both binaries serve it, answers only
// callers the API server authenticates and authorizes.
func metricsCase(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	mgr, err := manager.New(env.Config, manager.Options{Scheme: env.Scheme, LeaseNamespace: installNS, Endpoints: kubeflags.Endpoints{Metrics: addr, Probe: "0"}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stop := testenv.StartManager(ctx, mgr)
	defer func() {
		if err := stop(); err != nil {
			t.Error(err)
		}
	}()

	// A scraper with the chart's metrics-reader rule, and one without.
	reader := rbacv1.PolicyRule{NonResourceURLs: []string{"/metrics"}, Verbs: []string{"get"}}
	mustCreate(t, env.Client, &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "leaks-metrics-reader"}, Rules: []rbacv1.PolicyRule{reader}})
	mustCreate(t, env.Client, &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "leaks-metrics-reader"},
		Subjects: []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: tenantA, Name: "scraper"}},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "leaks-metrics-reader"}})
	scraper, nosy := token(t, tenantA, "scraper"), token(t, tenantA, "nosy")

	var code int
	if err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
		code, err = getMetrics(addr, "")
		return err == nil, nil
	}); err != nil {
		t.Fatalf("/metrics never answered: %v", err)
	}
	if code != http.StatusUnauthorized {
		t.Errorf("an unauthenticated GET got %d, want 401", code)
	}
	if code, err := getMetrics(addr, nosy); err != nil || code != http.StatusForbidden {
		t.Errorf("a ServiceAccount without get on /metrics got %d (%v), want 403", code, err)
	}
	if code, err := getMetrics(addr, scraper); err != nil || code != http.StatusOK {
		t.Errorf("the metrics reader got %d (%v), want 200", code, err)
	}
}

// token is a fresh token of ServiceAccount ns/name, created if missing.
func token(t *testing.T, ns, name string) string {
	t.Helper()
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
	mustCreate(t, env.Client, sa)
	tr := &authenticationv1.TokenRequest{}
	if err := env.Client.SubResource("token").Create(context.Background(), sa, tr); err != nil {
		t.Fatalf("token of %s/%s: %v", ns, name, err)
	}
	return tr.Status.Token
}

// getMetrics GETs /metrics at addr with a bearer token ("" for none):
// over HTTPS (the server's certificate is self-signed), else plain HTTP.
func getMetrics(addr, bearer string) (int, error) {
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} //nolint:gosec // a self-signed test server
	var last error
	for _, scheme := range []string{"https", "http"} {
		req, err := http.NewRequest(http.MethodGet, scheme+"://"+addr+"/metrics", nil)
		if err != nil {
			return 0, err
		}
		if bearer != "" {
			req.Header.Set("Authorization", "Bearer "+bearer)
		}
		resp, err := client.Do(req)
		if err != nil {
			last = err
			continue
		}
		resp.Body.Close()
		return resp.StatusCode, nil
	}
	return 0, fmt.Errorf("GET %s: %w", addr, last)
}
