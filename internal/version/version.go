// Package version is the release version the binaries were built from,
// set at link time from the chart's appVersion (see the Makefile).
package version

// Version is "dev" unless the build sets it with
// -X github.com/targetlock/targetlock/internal/version.Version=...
var Version = "dev"
