package plugin

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"

	"github.com/spf13/cobra"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	utilnet "k8s.io/apimachinery/pkg/util/net"
	"k8s.io/client-go/tools/clientcmd"
)

// Exit codes of kubectl-targetlock, and of the webhook binary's aliases of
// its commands (webhook denials, webhook certs verify).
const (
	// ExitOK: the command did what was asked; certs verify: every check passed.
	ExitOK = 0
	// ExitFailed: a check failed (certs verify found a problem), or another
	// error not covered below.
	ExitFailed = 1
	// ExitUsage: a bad flag, flag value or argument; nothing was asked of
	// the API server. Also a kubeconfig, --context or --cluster that cannot
	// be loaded.
	ExitUsage = 2
	// ExitUnreachable: the API server could not be reached or trusted:
	// connection refused or reset, DNS, TLS, a timeout, or no cluster
	// configured at all.
	ExitUnreachable = 3
)

// ExitError is an error with the exit code it calls for.
type ExitError struct {
	Code int
	Err  error
}

func (e *ExitError) Error() string { return e.Err.Error() }
func (e *ExitError) Unwrap() error { return e.Err }

// ExitCode is the process exit code for e.
func (e *ExitError) ExitCode() int { return e.Code }

// usageError marks err as a usage error (exit 2).
func usageError(err error) error {
	if err == nil {
		return nil
	}
	return &ExitError{Code: ExitUsage, Err: err}
}

// ExitCode is the exit code err calls for: 0 for nil, the code of an
// ExitError in its chain, ExitUnreachable when the API server could not be
// reached, else ExitFailed.
func ExitCode(err error) int {
	var e *ExitError
	switch {
	case err == nil:
		return ExitOK
	case errors.As(err, &e):
		return e.Code
	case Unreachable(err):
		return ExitUnreachable
	}
	return ExitFailed
}

// Execute runs cmd and returns nil or an *ExitError carrying the exit code
// (see ExitCode); an unreachable API server is said so.
func Execute(ctx context.Context, cmd *cobra.Command) error {
	err := cmd.ExecuteContext(ctx)
	if err == nil {
		return nil
	}
	var e *ExitError
	if errors.As(err, &e) {
		return err
	}
	if Unreachable(err) {
		return &ExitError{Code: ExitUnreachable, Err: fmt.Errorf("cannot reach the API server: %w", err)}
	}
	return &ExitError{Code: ExitFailed, Err: err}
}

// Unreachable reports whether err says the API server could not be reached
// or trusted, rather than that it answered.
func Unreachable(err error) bool {
	var (
		dnsErr      *net.DNSError
		opErr       *net.OpError
		netErr      net.Error
		unknownAuth x509.UnknownAuthorityError
		hostErr     x509.HostnameError
		invalidErr  x509.CertificateInvalidError
		verifyErr   *tls.CertificateVerificationError
		recordErr   tls.RecordHeaderError
	)
	switch {
	case err == nil:
		return false
	case errors.As(err, &dnsErr), errors.As(err, &opErr), errors.As(err, &netErr) && netErr.Timeout():
		return true
	case errors.As(err, &unknownAuth), errors.As(err, &hostErr), errors.As(err, &invalidErr),
		errors.As(err, &verifyErr), errors.As(err, &recordErr):
		return true
	case utilnet.IsConnectionRefused(err), utilnet.IsConnectionReset(err), utilnet.IsProbableEOF(err):
		return true
	case apierrors.IsServerTimeout(err), apierrors.IsTimeout(err), errors.Is(err, context.DeadlineExceeded):
		return true
	}
	return clientcmd.IsEmptyConfig(err)
}
