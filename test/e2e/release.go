package main

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/registry"
)

// startRegistry serves go-containerregistry's in-memory OCI registry on
// 127.0.0.1 (plain HTTP) and pushes the release to it as README says, with
// make release-push (the chart by helm push, the image index by its
// digest); from then on every install and upgrade takes the chart from
// oci://127.0.0.1:PORT/targetlock/charts/targetlock, as a user installs a
// release.
func (e *e2e) startRegistry(ctx context.Context) (stop func(), err error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	srv := &http.Server{Handler: registry.New(registry.Logger(log.New(io.Discard, "", 0))), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	stop = func() { _ = srv.Close() }
	repo := ln.Addr().String() + "/targetlock"
	step("make release-push " + filepath.Base(e.chart) + " and the image index to the in-process registry " + repo)
	if err := e.exec(ctx, "make", "--no-print-directory", "release-push", "REGISTRY="+repo, "PUSH_FLAGS=--plain-http"); err != nil {
		stop()
		return nil, err
	}
	e.ociChart = "oci://" + repo + "/charts/targetlock"
	return stop, nil
}

// chartArgs names the chart for helm install and upgrade: the OCI
// reference with its version once pushed, else the local chart.
func (e *e2e) chartArgs() []string {
	if e.ociChart == "" {
		return []string{e.chart}
	}
	return []string{e.ociChart, "--version", e.chartVersion, "--plain-http"}
}

// installPluginArchive checks the plugin's release archive holds the
// binary and LICENSE, and extracts the binary as the operations guide says
// (tar -xzf ARCHIVE -C DIR kubectl-targetlock) into a folder of its own put
// first on PATH, so that kubectl finds kubectl-targetlock there.
func (e *e2e) installPluginArchive(ctx context.Context) (cleanup func(), err error) {
	dir, err := os.MkdirTemp("", "targetlock-plugin-")
	if err != nil {
		return nil, err
	}
	cleanup = func() { _ = os.RemoveAll(dir) }
	got, err := tarNames(e.pluginArchive)
	if err == nil && !slices.Equal(got, []string{"LICENSE", "kubectl-targetlock"}) {
		err = fmt.Errorf("%s holds %v, want LICENSE and kubectl-targetlock", e.pluginArchive, got)
	}
	if err == nil {
		err = e.exec(ctx, "tar", "-xzf", e.pluginArchive, "-C", dir, "kubectl-targetlock")
	}
	if err == nil {
		err = os.Setenv("PATH", dir+string(os.PathListSeparator)+os.Getenv("PATH"))
	}
	if err == nil {
		// kubectl plugin list names the first kubectl-targetlock on PATH first.
		err = e.expect(ctx, e.kubectlBin, []string{"plugin", "list"}, filepath.Join(dir, "kubectl-targetlock"))
	}
	if err != nil {
		cleanup()
		return nil, fmt.Errorf("the plugin from its archive: %w", err)
	}
	step("kubectl-targetlock from " + filepath.Base(e.pluginArchive) + " on PATH")
	return cleanup, nil
}

// tarNames lists the entries of a .tar.gz, sorted; each must be a regular
// file at the top.
func tarNames(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		return nil, err
	}
	tr := tar.NewReader(zr)
	var names []string
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			slices.Sort(names)
			return names, nil
		}
		if err != nil {
			return nil, err
		}
		if h.Typeflag != tar.TypeReg || strings.Contains(h.Name, "/") {
			return nil, fmt.Errorf("%s: unexpected entry %q", path, h.Name)
		}
		names = append(names, h.Name)
	}
}

// kubectlPlugin runs `kubectl targetlock ARGS --kubeconfig ...` (kubectl's
// plugin discovery on PATH, its flags passed through to the plugin) and
// fails unless it exits 0 and prints every string of want. Each
// subcommand that printed what it had to is recorded for kubectl_plugin=1.
func (e *e2e) kubectlPlugin(ctx context.Context, want []string, args ...string) error {
	err := e.expect(ctx, e.kubectlBin, append(append([]string{"targetlock"}, args...), "--kubeconfig", e.kubeconfig), want...)
	if err == nil && len(want) > 0 {
		e.pluginPassed[args[0]] = true
	}
	return err
}

// expect runs bin and fails unless it exits 0 and prints every string of want.
func (e *e2e) expect(ctx context.Context, bin string, args []string, want ...string) error {
	out, err := e.run(ctx, bin, args...)
	if err != nil {
		return err
	}
	for _, w := range want {
		if !strings.Contains(out, w) {
			return fmt.Errorf("%s %s: the output lacks %q", filepath.Base(bin), strings.Join(args, " "), w)
		}
	}
	return nil
}

// pluginVerified is kubectl_plugin=1: certs verify, locks and denials
// each ran through kubectl and printed what they had to.
func (e *e2e) pluginVerified() bool {
	return e.pluginPassed["certs"] && e.pluginPassed["locks"] && e.pluginPassed["denials"]
}

// releaseRun is what of a release the run uses: the chart from an OCI
// registry, the plugin from its archive.
type releaseRun struct {
	oci, archive bool
	stop         func()
}

// fromRelease puts the plugin archive's binary on PATH and pushes the
// chart package to the in-process registry, when given them.
func (e *e2e) fromRelease(ctx context.Context) (releaseRun, error) {
	var stops []func()
	r := releaseRun{stop: func() {
		for _, s := range stops {
			s()
		}
	}}
	if e.pluginArchive != "" {
		cleanup, err := e.installPluginArchive(ctx)
		if err != nil {
			return r, err
		}
		stops, r.archive = append(stops, cleanup), true
	}
	if e.chartVersion != "" {
		if !strings.HasSuffix(e.chart, ".tgz") {
			r.stop()
			return r, fmt.Errorf("--chart-version needs a chart package (.tgz) as --chart, not %s", e.chart)
		}
		stop, err := e.startRegistry(ctx)
		if err != nil {
			r.stop()
			return r, err
		}
		stops, r.oci = append(stops, stop), true
	}
	return r, nil
}
