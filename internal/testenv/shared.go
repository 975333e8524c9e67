package testenv

import (
	"os"
	"sync"
	"testing"
)

var (
	sharedOnce sync.Once
	shared     *Env
	sharedErr  error
)

// Shared starts one control plane per test binary on first use, so plain Go
// tests and Ginkgo suites in one package share it. Call StopShared from
// TestMain after m.Run.
func Shared(tb interface {
	Helper()
	Fatalf(format string, args ...any)
	Skip(args ...any)
}) *Env {
	tb.Helper()
	SkipShort(tb)
	sharedOnce.Do(func() { shared, sharedErr = Start(Options{}) })
	if sharedErr != nil {
		tb.Fatalf("starting the control plane: %v", sharedErr)
	}
	return shared
}

// SkipShort skips a test that needs a control plane under go test -short,
// so that the unit tests run on a machine without bin/.
func SkipShort(tb interface {
	Helper()
	Skip(args ...any)
}) {
	tb.Helper()
	if testing.Short() {
		tb.Skip("needs a control plane (kube-apiserver and etcd); skipped with -short")
	}
}

// StopShared stops the shared control plane, if one was started.
func StopShared() {
	if shared != nil {
		if err := shared.Stop(); err != nil {
			os.Stderr.WriteString("stopping the control plane: " + err.Error() + "\n")
		}
	}
}

// Main runs a package's tests and stops the shared control plane afterwards.
func Main(m *testing.M) {
	code := m.Run()
	StopShared()
	os.Exit(code)
}
