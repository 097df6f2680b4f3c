// Package image builds rotor's container image without a daemon: one
// layer with the static binary, a passwd/group naming the non-root user,
// and the CA certificates, written as an OCI image layout that skopeo,
// podman, crane or a registry push can take. The Dockerfile at the root
// builds the same image with docker; a test keeps the two in step.
package image

import (
	"archive/tar"
	"bytes"
	"fmt"
	"os"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// What the image runs, and as whom. The Dockerfile says the same.
var (
	// Entrypoint is the binary.
	Entrypoint = []string{"/rotor"}
	// Cmd serves over TLS with the certificate mounted at /etc/rotor/tls
	// (a Kubernetes TLS Secret); the deploy manifests and docs/deploy.md
	// say how to change it.
	Cmd = []string{"serve", "--listen", "0.0.0.0:8443", "--tls-cert", "/etc/rotor/tls/tls.crt", "--tls-key", "/etc/rotor/tls/tls.key"}
	// User is a numeric, non-root uid:gid (distroless's "nonroot").
	User = "65532:65532"
	// Port is the port Cmd listens on.
	Port = "8443/tcp"
	// Env holds only paths: every secret comes from the runtime's
	// environment (a Secret), never from the image.
	Env = []string{"ROTOR_CONFIG=/etc/rotor/rotor.yaml", "PATH=/"}
	// WorkingDir is where relative paths of the config resolve (a
	// volume: the image's file system is read-only in the manifests).
	WorkingDir = "/var/lib/rotor"
)

// Options say what goes in.
type Options struct {
	// Binary is the path of a static linux rotor binary.
	Binary string
	// CACerts is the CA bundle to include (default
	// /etc/ssl/certs/ca-certificates.crt of the build machine).
	CACerts string
	// Version and Revision label the image.
	Version, Revision string
	// Created is the image's creation time; zero means the epoch, so the
	// same inputs give the same digest.
	Created time.Time
	// Arch is the binary's architecture (default amd64).
	Arch string
}

// Build makes the image.
func Build(opts Options) (v1.Image, error) {
	bin, err := os.ReadFile(opts.Binary)
	if err != nil {
		return nil, fmt.Errorf("read the rotor binary: %w", err)
	}
	caPath := opts.CACerts
	if caPath == "" {
		caPath = "/etc/ssl/certs/ca-certificates.crt"
	}
	ca, err := os.ReadFile(caPath)
	if err != nil {
		return nil, fmt.Errorf("read the CA certificates (install ca-certificates, or give -ca): %w", err)
	}
	created := opts.Created.UTC()
	if opts.Created.IsZero() {
		created = time.Unix(0, 0).UTC()
	}
	layerTar, err := rootfs(bin, ca, created)
	if err != nil {
		return nil, err
	}
	layer, err := tarball.LayerFromOpener(func() (ioReadCloser, error) { return nopCloser{bytes.NewReader(layerTar)}, nil },
		tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return nil, fmt.Errorf("make the layer: %w", err)
	}
	img, err := mutate.AppendLayers(mutate.MediaType(empty.Image, types.OCIManifestSchema1), layer)
	if err != nil {
		return nil, err
	}
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.Architecture = cmpOr(opts.Arch, "amd64")
	cf.OS = "linux"
	cf.Created = v1.Time{Time: created}
	cf.Config.Entrypoint = Entrypoint
	cf.Config.Cmd = Cmd
	cf.Config.User = User
	cf.Config.Env = Env
	cf.Config.WorkingDir = WorkingDir
	cf.Config.ExposedPorts = map[string]struct{}{Port: {}}
	cf.Config.Labels = map[string]string{
		"org.opencontainers.image.title":       "rotor",
		"org.opencontainers.image.description": "Rotates PostgreSQL credentials and rolls the new connection string out everywhere",
		"org.opencontainers.image.source":      "https://github.com/rotorhq/rotor",
		"org.opencontainers.image.version":     cmpOr(opts.Version, "dev"),
		"org.opencontainers.image.revision":    opts.Revision,
		"org.opencontainers.image.created":     created.Format(time.RFC3339),
	}
	cf.History = []v1.History{{Created: v1.Time{Time: created}, CreatedBy: "rotor-image: /rotor, /etc/passwd, /etc/group, CA certificates"}}
	return mutate.ConfigFile(img, cf)
}

// WriteLayout writes img as an OCI image layout at dir (created, or
// replaced), tagged ref in the index's annotations.
func WriteLayout(dir string, img v1.Image, ref string) error {
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		return fmt.Errorf("write the OCI layout: %w", err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return err
	}
	return p.AppendImage(img, layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": ref}),
		layout.WithPlatform(v1.Platform{OS: cf.OS, Architecture: cf.Architecture}))
}

// rootfs is the layer's tar: directories, the binary (root-owned, not
// writable by the user that runs it), the user and group files, the CA
// bundle, and the working directory owned by the user. No shell.
func rootfs(bin, ca []byte, mtime time.Time) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	uid := 65532
	entries := []struct {
		name string
		mode int64
		body []byte
		dir  bool
		own  int
	}{
		{name: "etc/", mode: 0o755, dir: true},
		{name: "etc/passwd", mode: 0o644, body: []byte("root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:rotor:/var/lib/rotor:/sbin/nologin\n")},
		{name: "etc/group", mode: 0o644, body: []byte("root:x:0:\nnonroot:x:65532:\n")},
		{name: "etc/rotor/", mode: 0o755, dir: true},
		{name: "etc/ssl/", mode: 0o755, dir: true},
		{name: "etc/ssl/certs/", mode: 0o755, dir: true},
		{name: "etc/ssl/certs/ca-certificates.crt", mode: 0o644, body: ca},
		{name: "tmp/", mode: 0o1777, dir: true},
		{name: "var/", mode: 0o755, dir: true},
		{name: "var/lib/", mode: 0o755, dir: true},
		{name: "var/lib/rotor/", mode: 0o700, dir: true, own: uid},
		{name: "rotor", mode: 0o755, body: bin},
	}
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Mode: e.mode, ModTime: mtime, Uid: e.own, Gid: e.own, Format: tar.FormatPAX}
		if e.dir {
			h.Typeflag = tar.TypeDir
		} else {
			h.Typeflag = tar.TypeReg
			h.Size = int64(len(e.body))
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if _, err := tw.Write(e.body); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func cmpOr(v, def string) string {
	if v == "" {
		return def
	}
	return v
}
