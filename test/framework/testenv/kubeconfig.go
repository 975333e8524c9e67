package testenv

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"testing"
)

// ClosedKubeconfig writes a kubeconfig naming an API server on a
// 127.0.0.1 port nothing listens on, for the paths where the API server
// cannot be reached.
func ClosedKubeconfig(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "kubeconfig")
	data := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters: [{name: closed, cluster: {server: "https://%s", insecure-skip-tls-verify: true}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: closed, context: {cluster: closed, user: u}}]
current-context: closed
`, addr)
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}
