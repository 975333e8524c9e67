// Command pause is the e2e node's pod sandbox image: it holds the pod's
// namespaces and exits on SIGTERM or SIGINT, like Kubernetes' pause.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	<-sig
}
