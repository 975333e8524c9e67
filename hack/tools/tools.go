//go:build tools

// Package tools pins the binaries the tests, the demo and the e2e node run:
// the real kube-apiserver and etcd, for the node kubelet,
// kube-controller-manager, kube-scheduler and kube-proxy, and kubectl (the
// e2e runs the plugin through it), built from source at fixed versions.
package tools

import (
	_ "go.etcd.io/etcd/server/v3"
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-proxy"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubectl"
	_ "k8s.io/kubernetes/cmd/kubelet"
)
