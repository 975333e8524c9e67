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
	User, Platform  string
	Entrypoint      string
	Out, DigestFile string
}

// epoch is every timestamp in the image: equal inputs, equal digest.
var epoch = time.Unix(0, 0).UTC()

func build(o options) (v1.Hash, error) {
	layer, err := filesLayer(o.Files)
	if err != nil {
		return v1.Hash{}, err
	}
	base := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	base = mutate.ConfigMediaType(base, types.OCIConfigJSON)
	img, err := mutate.Append(base, mutate.Addendum{Layer: layer, MediaType: types.OCILayer})
	if err != nil {
		return v1.Hash{}, fmt.Errorf("adding the layer: %w", err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return v1.Hash{}, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture, _ = strings.Cut(o.Platform, "/")
	cf.Created = v1.Time{Time: epoch}
	cf.Config = v1.Config{User: o.User, Env: []string{"PATH=/"}, Labels: o.Labels, WorkingDir: "/"}
	if o.Entrypoint != "" {
		cf.Config.Entrypoint = []string{o.Entrypoint}
	}
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		return v1.Hash{}, fmt.Errorf("setting the config: %w", err)
	}
	digest, err := img.Digest()
	if err != nil {
		return v1.Hash{}, err
	}
	if err := writeLayoutTar(o, img); err != nil {
		return v1.Hash{}, err
	}
	if o.DigestFile != "" {
		if err := os.WriteFile(o.DigestFile, []byte(digest.String()+"\n"), 0o644); err != nil {
			return v1.Hash{}, err
		}
	}
	return digest, nil
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

// writeLayoutTar writes img as an OCI image layout and tars it. The index
// names the image both the OCI way (ref.name: the tag) and containerd's way
// (the full reference), so `ctr images import` keeps the name.
func writeLayoutTar(o options, img v1.Image) error {
	dir, err := os.MkdirTemp("", "oci-layout-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		return fmt.Errorf("writing the layout: %w", err)
	}
	ref := o.Repository + ":" + o.Tag
	if err := p.AppendImage(img, layout.WithAnnotations(map[string]string{
		"org.opencontainers.image.ref.name": o.Tag,
		"io.containerd.image.name":          ref,
	})); err != nil {
		return fmt.Errorf("writing the image: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(o.Out), 0o755); err != nil {
		return err
	}
	out, err := os.Create(o.Out)
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
	if err != nil {
		return fmt.Errorf("writing %s: %w", o.Out, err)
	}
	return nil
}
