package main

import (
	"archive/tar"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// runPush is `image push`: the image or index a layout tarball holds, to
// a registry under a tag, by the credentials of ~/.docker/config.json.
func runPush(args []string) error {
	fs := flag.NewFlagSet("image push", flag.ContinueOnError)
	tarPath := fs.String("tar", "", "OCI image layout tarball written by image")
	ref := fs.String("ref", "", "where to push it, REGISTRY/REPO:TAG")
	plainHTTP := fs.Bool("plain-http", false, "talk to the registry over plain HTTP")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if *tarPath == "" || *ref == "" {
		return errors.New("push: --tar and --ref are required")
	}
	var opts []name.Option
	if *plainHTTP {
		opts = append(opts, name.Insecure)
	}
	r, err := name.ParseReference(*ref, opts...)
	if err != nil {
		return err
	}
	digest, err := push(*tarPath, r, remote.WithAuthFromKeychain(authn.DefaultKeychain))
	if err != nil {
		return err
	}
	fmt.Printf("%s@%s\n", r.Name(), digest)
	return nil
}

// push writes the first entry of the layout in tarPath to r and returns
// its digest, which the registry keeps.
func push(tarPath string, r name.Reference, opts ...remote.Option) (v1.Hash, error) {
	dir, err := os.MkdirTemp("", "oci-layout-")
	if err != nil {
		return v1.Hash{}, err
	}
	defer os.RemoveAll(dir)
	if err := untar(tarPath, dir); err != nil {
		return v1.Hash{}, err
	}
	p, err := layout.FromPath(dir)
	if err != nil {
		return v1.Hash{}, err
	}
	top, err := p.ImageIndex()
	if err != nil {
		return v1.Hash{}, err
	}
	m, err := top.IndexManifest()
	if err != nil {
		return v1.Hash{}, err
	}
	if len(m.Manifests) == 0 {
		return v1.Hash{}, fmt.Errorf("%s: an empty layout", tarPath)
	}
	d := m.Manifests[0]
	if d.MediaType.IsIndex() {
		idx, err := top.ImageIndex(d.Digest)
		if err != nil {
			return v1.Hash{}, err
		}
		return d.Digest, remote.WriteIndex(r, idx, opts...)
	}
	img, err := top.Image(d.Digest)
	if err != nil {
		return v1.Hash{}, err
	}
	return d.Digest, remote.Write(r, img, opts...)
}

// untar extracts the regular files and folders of an OCI layout tarball.
func untar(tarPath, dir string) error {
	f, err := os.Open(tarPath)
	if err != nil {
		return err
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		dst := filepath.Join(dir, filepath.FromSlash(h.Name))
		if !strings.HasPrefix(dst, filepath.Clean(dir)+string(os.PathSeparator)) {
			return fmt.Errorf("%s: %q leaves the layout", tarPath, h.Name)
		}
		switch h.Typeflag {
		case tar.TypeDir:
			err = os.MkdirAll(dst, 0o755)
		case tar.TypeReg:
			err = writeFile(dst, tr)
		}
		if err != nil {
			return err
		}
	}
}

func writeFile(dst string, r io.Reader) error {
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, r); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
