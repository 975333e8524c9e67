package testenv

import (
	"fmt"
	"os"
	"slices"
	"sync"
	"testing"
)

// TB is what the helpers need of a test: *testing.T, *testing.B and
// Ginkgo's GinkgoT() all have it.
type TB interface {
	Helper()
	Fatalf(format string, args ...any)
	Skip(args ...any)
}

// Fixture is what a test binary's tests share: started by the first test
// that asks for it, so tests that do not need it (unit tests, fuzzing,
// benchmarks, -short) do not pay for it, and stopped by Main after the last.
type Fixture[T any] struct {
	// Start brings the fixture up. stop, when not nil, takes down what was
	// started, also when err is not nil.
	Start func() (v T, stop func() error, err error)

	once sync.Once
	v    T
	err  error
}

var (
	stopsMu sync.Mutex
	stops   []func() error
)

// Get returns the fixture, starting it on first use; a test under -short
// is skipped, a failed start fails every test that asks for it.
func (f *Fixture[T]) Get(tb TB) T {
	tb.Helper()
	SkipShort(tb)
	f.once.Do(func() {
		var stop func() error
		f.v, stop, f.err = f.Start()
		if stop != nil {
			stopsMu.Lock()
			stops = append(stops, stop)
			stopsMu.Unlock()
		}
	})
	if f.err != nil {
		tb.Fatalf("starting the tests' shared fixture: %v", f.err)
	}
	return f.v
}

var shared = Fixture[*Env]{Start: func() (*Env, func() error, error) {
	env, err := Start(Options{})
	if err != nil {
		return nil, nil, err
	}
	return env, env.Stop, nil
}}

// Shared is one plain control plane per test binary, so plain Go tests and
// Ginkgo suites in one package share it. Use Main as TestMain.
func Shared(tb TB) *Env {
	tb.Helper()
	return shared.Get(tb)
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

// Main runs a package's tests, then stops the fixtures they started, the
// last started first.
func Main(m *testing.M) {
	code := m.Run()
	stopsMu.Lock()
	for _, stop := range slices.Backward(stops) {
		if err := stop(); err != nil {
			fmt.Fprintln(os.Stderr, "stopping a test fixture:", err)
		}
	}
	stopsMu.Unlock()
	os.Exit(code)
}
