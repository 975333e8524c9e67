// Command image assembles an OCI image from static binaries, without a
// container daemon: one layer holding the files, a non-root user, no shell.
// It writes the image, or one image per platform under an OCI image index,
// as an OCI image layout in a tarball (loadable with `ctr images import` or
// `skopeo copy oci-archive:`) and prints its digest, the name a pod pins the
// image by. `image push` copies such a tarball to a registry.
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "image:", err)
		os.Exit(1)
	}
}

// files is a repeatable --file src:dst flag.
type files []file

func (f *files) String() string { return fmt.Sprint(*f) }

func (f *files) Set(v string) error {
	src, dst, ok := strings.Cut(v, ":")
	if !ok || src == "" || !strings.HasPrefix(dst, "/") {
		return fmt.Errorf("%q: want SRC:/DST", v)
	}
	*f = append(*f, file{src: src, dst: dst})
	return nil
}

// list is a repeatable string flag.
type list []string

func (l *list) String() string { return strings.Join(*l, ",") }

func (l *list) Set(v string) error {
	*l = append(*l, v)
	return nil
}

// labels is a repeatable --label key=value flag.
type labels map[string]string

func (l labels) String() string { return fmt.Sprint(map[string]string(l)) }

func (l labels) Set(v string) error {
	k, val, ok := strings.Cut(v, "=")
	if !ok || k == "" {
		return fmt.Errorf("%q: want KEY=VALUE", v)
	}
	l[k] = val
	return nil
}

func run(args []string) error {
	if len(args) > 0 && args[0] == "push" {
		return runPush(args[1:])
	}
	o := options{Labels: labels{}}
	fs := flag.NewFlagSet("image", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `Usage: image --file SRC:/DST... --repository REPO --tag TAG --out FILE.tar [flags]
       image push --tar FILE.tar --ref REGISTRY/REPO:TAG [--plain-http]

Builds a single-layer OCI image holding the given files (mode 0755, owned by
root, modification time 0, so equal inputs give an equal digest) with no
entrypoint shell, and writes it as an OCI image layout tarball. With more
than one --platform it builds one such image per platform, the files' SRC
with {os} and {arch} replaced, under one OCI image index. Prints
"REPO:TAG@DIGEST" (the index's digest for an index).

image push copies what such a tarball holds to a registry, keeping its
digest.

Flags:
`)
		fs.PrintDefaults()
	}
	// What the image holds and how it runs, its name, and where it goes.
	fs.Var((*files)(&o.Files), "file", "a file to put in the image as SRC:/DST (repeatable)")
	fs.StringVar(&o.Entrypoint, "entrypoint", "", "entrypoint path in the image (default none: the pod sets its command)")
	fs.StringVar(&o.User, "user", "65532:65532", "numeric UID:GID the image runs as")
	fs.Var((*list)(&o.Platforms), "platform", "OS/ARCH of the binaries (repeatable; more than one writes an image index; default linux/amd64)")
	fs.Var(o.Labels, "label", "an image label KEY=VALUE (repeatable)")
	fs.StringVar(&o.Repository, "repository", "", "image repository, e.g. ghcr.io/targetlock/targetlock")
	fs.StringVar(&o.Tag, "tag", "", "image tag")
	fs.StringVar(&o.Out, "out", "", "tarball to write")
	fs.StringVar(&o.DigestFile, "digest-file", "", "also write the manifest digest to this file")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if len(o.Platforms) == 0 {
		o.Platforms = []string{"linux/amd64"}
	}
	if len(o.Files) == 0 || o.Repository == "" || o.Tag == "" || o.Out == "" {
		fs.Usage()
		return errors.New("--file, --repository, --tag and --out are required")
	}
	digest, err := build(o)
	if err != nil {
		return err
	}
	fmt.Printf("%s:%s@%s\n", o.Repository, o.Tag, digest)
	return nil
}
