package main

import (
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// TestIndexPushedKeepsItsDigest builds an index of two platforms, checks
// each image holds its own platform's file, pushes the tarball to a
// registry and reads the same index back by tag.
func TestIndexPushedKeepsItsDigest(t *testing.T) {
	dir := t.TempDir()
	for _, arch := range []string{"amd64", "arm64"} {
		if err := os.WriteFile(filepath.Join(dir, "bin-"+arch), []byte("binary for "+arch), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	o := options{Files: []file{{src: filepath.Join(dir, "bin-{arch}"), dst: "/bin"}}, Labels: labels{},
		Repository: "example.test/targetlock", Tag: "0.1.0", User: "65532:65532",
		Platforms: []string{"linux/amd64", "linux/arm64"}, Out: filepath.Join(dir, "index.tar")}
	digest, err := build(o)
	if err != nil {
		t.Fatal(err)
	}
	again, err := build(o)
	if err != nil || again != digest {
		t.Fatalf("a second build gave %s (%v), want the same digest %s", again, err, digest)
	}

	srv := httptest.NewServer(registry.New())
	defer srv.Close()
	ref, err := name.ParseReference(strings.TrimPrefix(srv.URL, "http://")+"/targetlock:0.1.0", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	pushed, err := push(o.Out, ref)
	if err != nil || pushed != digest {
		t.Fatalf("push returned %s (%v), want %s", pushed, err, digest)
	}
	idx, err := remote.Index(ref)
	if err != nil {
		t.Fatal(err)
	}
	got, err := idx.Digest()
	if err != nil || got != digest {
		t.Fatalf("the registry holds index %s (%v), want %s", got, err, digest)
	}
	checkPlatforms(t, idx)
}

// checkPlatforms wants an index of a linux/amd64 and a linux/arm64 image,
// each configured for its platform and the non-root user.
func checkPlatforms(t *testing.T, idx v1.ImageIndex) {
	t.Helper()
	m, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	var platforms []string
	for _, d := range m.Manifests {
		platforms = append(platforms, d.Platform.String())
		img, err := idx.Image(d.Digest)
		if err != nil {
			t.Fatal(err)
		}
		cf, err := img.ConfigFile()
		if err != nil || cf.Architecture != d.Platform.Architecture || cf.Config.User != "65532:65532" {
			t.Fatalf("image %s: config %+v (%v), want arch %s, user 65532:65532", d.Digest, cf, err, d.Platform.Architecture)
		}
	}
	if strings.Join(platforms, ",") != "linux/amd64,linux/arm64" {
		t.Fatalf("index platforms %v, want linux/amd64, linux/arm64", platforms)
	}
}

// TestOnePlatformIsAnImage keeps a single-platform build (the e2e's pause
// image) a plain image manifest.
func TestOnePlatformIsAnImage(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "pause")
	if err := os.WriteFile(src, []byte("pause"), 0o755); err != nil {
		t.Fatal(err)
	}
	o := options{Files: []file{{src: src, dst: "/pause"}}, Labels: labels{}, Repository: "localhost/pause", Tag: "3.10",
		User: "65532:65532", Platforms: []string{"linux/amd64"}, Out: filepath.Join(dir, "pause.tar")}
	digest, err := build(o)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(registry.New())
	defer srv.Close()
	ref, err := name.ParseReference(strings.TrimPrefix(srv.URL, "http://")+"/pause:3.10", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := push(o.Out, ref); err != nil {
		t.Fatal(err)
	}
	img, err := remote.Image(ref)
	if err != nil {
		t.Fatal(err)
	}
	mt, err := img.MediaType()
	if err != nil || mt.IsIndex() {
		t.Fatalf("media type %s (%v), want an image manifest", mt, err)
	}
	if got, _ := img.Digest(); got != digest {
		t.Fatalf("digest %s, want %s", got, digest)
	}
}
