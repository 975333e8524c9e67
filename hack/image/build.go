package main

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

type file struct{ src, dst string }

type options struct {
	Files           []file
	Labels          labels
	Repository, Tag string
	User            string
	Platforms       []string
	Entrypoint      string
	Out, DigestFile string
}

// appender is what an OCI layout can append: an image or an index.
type appender interface {
	Digest() (v1.Hash, error)
}

// epoch is every timestamp in the image: equal inputs, equal digest.
var epoch = time.Unix(0, 0).UTC()

// build writes one image for one platform, or an OCI image index of one
// image per platform for more, and returns the digest a pod pins.
func build(o options) (v1.Hash, error) {
	var top appender
	if len(o.Platforms) == 1 {
		img, err := buildImage(o, o.Platforms[0])
		if err != nil {
			return v1.Hash{}, err
		}
		top = img
	} else {
		idx, err := buildIndex(o)
		if err != nil {
			return v1.Hash{}, err
		}
		top = idx
	}
	digest, err := top.Digest()
	if err != nil {
		return v1.Hash{}, err
	}
	if err := writeLayoutTar(o, top); err != nil {
		return v1.Hash{}, err
	}
	if o.DigestFile != "" {
		if err := os.WriteFile(o.DigestFile, []byte(digest.String()+"\n"), 0o644); err != nil {
			return v1.Hash{}, err
		}
	}
	return digest, nil
}

// buildIndex is an OCI image index of one image per platform, in the
// order given.
func buildIndex(o options) (v1.ImageIndex, error) {
	var adds []mutate.IndexAddendum
	for _, p := range o.Platforms {
		img, err := buildImage(o, p)
		if err != nil {
			return nil, err
		}
		goos, arch, _ := strings.Cut(p, "/")
		adds = append(adds, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{
			MediaType: types.OCIManifestSchema1, Platform: &v1.Platform{OS: goos, Architecture: arch}}})
	}
	return mutate.AppendManifests(mutate.IndexMediaType(empty.Index, types.OCIImageIndex), adds...), nil
}

// buildImage is the image of one platform: the files, with {os} and
// {arch} in their sources replaced by the platform's.
func buildImage(o options, platform string) (v1.Image, error) {
	goos, arch, ok := strings.Cut(platform, "/")
	if !ok || goos == "" || arch == "" {
		return nil, fmt.Errorf("platform %q: want OS/ARCH", platform)
	}
	files := make([]file, len(o.Files))
	for i, f := range o.Files {
		files[i] = file{src: strings.NewReplacer("{os}", goos, "{arch}", arch).Replace(f.src), dst: f.dst}
	}
	layer, err := filesLayer(files)
	if err != nil {
		return nil, err
	}
	base := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	base = mutate.ConfigMediaType(base, types.OCIConfigJSON)
	img, err := mutate.Append(base, mutate.Addendum{Layer: layer, MediaType: types.OCILayer})
	if err != nil {
		return nil, fmt.Errorf("adding the layer: %w", err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = goos, arch
	cf.Created = v1.Time{Time: epoch}
	cf.Config = v1.Config{User: o.User, Env: []string{"PATH=/"}, Labels: o.Labels, WorkingDir: "/"}
	if o.Entrypoint != "" {
		cf.Config.Entrypoint = []string{o.Entrypoint}
	}
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		return nil, fmt.Errorf("setting the config: %w", err)
	}
	return img, nil
}

// filesLayer is one uncompressed tar of the files, root-owned, 0755.
func filesLayer(files []file) (v1.Layer, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range files {
		data, err := os.ReadFile(f.src)
		if err != nil {
			return nil, err
		}
		h := &tar.Header{Name: strings.TrimPrefix(f.dst, "/"), Mode: 0o755, Size: int64(len(data)),
			Typeflag: tar.TypeReg, ModTime: epoch, Format: tar.FormatPAX}
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if _, err := tw.Write(data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	b := buf.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil },
		tarball.WithMediaType(types.OCILayer))
}

// writeLayoutTar writes top (an image or an index) as an OCI image layout
// and tars it. The layout's index names it both the OCI way (ref.name: the
// tag) and containerd's way (the full reference), so `ctr images import`
// keeps the name.
func writeLayoutTar(o options, top appender) error {
	dir, err := os.MkdirTemp("", "oci-layout-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		return fmt.Errorf("writing the layout: %w", err)
	}
	names := layout.WithAnnotations(map[string]string{
		"org.opencontainers.image.ref.name": o.Tag,
		"io.containerd.image.name":          o.Repository + ":" + o.Tag,
	})
	switch t := top.(type) {
	case v1.ImageIndex:
		err = p.AppendIndex(t, names)
	case v1.Image:
		err = p.AppendImage(t, names)
	}
	if err != nil {
		return fmt.Errorf("writing the image: %w", err)
	}
	if err := tarDir(dir, o.Out); err != nil {
		return fmt.Errorf("writing %s: %w", o.Out, err)
	}
	return nil
}

// tarDir writes the files under dir to the tarball outPath.
func tarDir(dir, outPath string) error {
	if err := os.MkdirAll(filepath.Dir(outPath), 0o755); err != nil {
		return err
	}
	out, err := os.Create(outPath)
	if err != nil {
		return err
	}
	tw := tar.NewWriter(out)
	// WalkDir visits in lexical order: the tarball is byte-for-byte reproducible.
	err = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || path == dir {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		h := &tar.Header{Name: filepath.ToSlash(rel), ModTime: epoch, Mode: 0o644, Format: tar.FormatPAX}
		if d.IsDir() {
			h.Typeflag, h.Name, h.Mode = tar.TypeDir, h.Name+"/", 0o755
			return tw.WriteHeader(h)
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		h.Typeflag, h.Size = tar.TypeReg, int64(len(data))
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		_, err = tw.Write(data)
		return err
	})
	if err == nil {
		err = tw.Close()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	return err
}
