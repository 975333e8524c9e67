//go:build tools

// Package tools pins the binaries the tests and the demo run: the real
// kube-apiserver and etcd, built from source at fixed versions.
package tools

import (
	_ "go.etcd.io/etcd/server/v3"
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
)
