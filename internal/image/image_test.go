package image_test

import (
	"archive/tar"
	"bufio"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/stretchr/testify/require"

	"github.com/rotorhq/rotor/internal/image"
)

// built writes an image of a stand-in binary as an OCI layout and reads it
// back the way skopeo or a registry would.
func built(t *testing.T, created time.Time) (dir string, files map[string]*tar.Header, cfgJSON []byte, digest string) {
	t.Helper()
	tmp := t.TempDir()
	bin := filepath.Join(tmp, "rotor")
	require.NoError(t, os.WriteFile(bin, []byte("\x7fELF stand-in for the static rotor binary"), 0o755))
	ca := filepath.Join(tmp, "ca.crt")
	require.NoError(t, os.WriteFile(ca, []byte("-----BEGIN CERTIFICATE-----\nstand-in\n-----END CERTIFICATE-----\n"), 0o644))
	img, err := image.Build(image.Options{Binary: bin, CACerts: ca, Version: "v1.2.3", Revision: "abc123", Created: created})
	require.NoError(t, err)
	dir = filepath.Join(tmp, "layout")
	require.NoError(t, image.WriteLayout(dir, img, "rotor:v1.2.3"))

	idx, err := layout.ImageIndexFromPath(dir)
	require.NoError(t, err)
	man, err := idx.IndexManifest()
	require.NoError(t, err)
	require.Len(t, man.Manifests, 1)
	require.Equal(t, "rotor:v1.2.3", man.Manifests[0].Annotations["org.opencontainers.image.ref.name"])
	got, err := idx.Image(man.Manifests[0].Digest)
	require.NoError(t, err)
	cfgJSON, err = got.RawConfigFile()
	require.NoError(t, err)
	layers, err := got.Layers()
	require.NoError(t, err)
	require.Len(t, layers, 1)
	rc, err := layers[0].Uncompressed()
	require.NoError(t, err)
	defer rc.Close()
	files = map[string]*tar.Header{}
	tr := tar.NewReader(rc)
	var body strings.Builder
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		require.NoError(t, err)
		files[strings.TrimSuffix(h.Name, "/")] = h
		b, err := io.ReadAll(tr)
		require.NoError(t, err)
		body.Write(b)
	}
	files["(contents)"] = &tar.Header{Name: body.String()}
	return dir, files, cfgJSON, man.Manifests[0].Digest.String()
}

func TestImage(t *testing.T) {
	// Secrets in the build's environment must not end up in the image.
	t.Setenv("ROTOR_KEY", "k3y-that-must-not-bake-into-the-image")
	t.Setenv("ROTOR_API_TOKENS", "ops:admin:token-that-must-not-bake-into-the-image")
	_, files, cfgJSON, _ := built(t, time.Time{})

	var cfg struct {
		Architecture, OS string
		Config           struct {
			Entrypoint, Cmd, Env []string
			User, WorkingDir     string
			ExposedPorts         map[string]struct{}
			Labels               map[string]string
		}
	}
	require.NoError(t, json.Unmarshal(cfgJSON, &cfg))
	require.Equal(t, []string{"/rotor"}, cfg.Config.Entrypoint)
	require.Equal(t, "serve", cfg.Config.Cmd[0])
	require.Equal(t, "65532:65532", cfg.Config.User, "runs as a numeric non-root user")
	require.NotContains(t, []string{"", "0", "root"}, strings.Split(cfg.Config.User, ":")[0])
	require.Contains(t, cfg.Config.ExposedPorts, "8443/tcp")
	require.Equal(t, "linux", cfg.OS)
	require.Equal(t, "v1.2.3", cfg.Config.Labels["org.opencontainers.image.version"])
	require.Equal(t, "abc123", cfg.Config.Labels["org.opencontainers.image.revision"])
	for _, e := range cfg.Config.Env {
		k, _, _ := strings.Cut(e, "=")
		require.Contains(t, []string{"ROTOR_CONFIG", "PATH"}, k, "only paths in the image's environment")
	}

	rotor := files["rotor"]
	require.NotNil(t, rotor, "the binary is at /rotor")
	require.EqualValues(t, 0o755, rotor.Mode)
	require.Zero(t, rotor.Uid, "the binary belongs to root: the user that runs it cannot change it")
	require.EqualValues(t, 65532, files["var/lib/rotor"].Uid, "the working directory is the user's")
	require.NotNil(t, files["etc/ssl/certs/ca-certificates.crt"], "CA certificates for TLS to databases and APIs")
	for name := range files {
		require.False(t, strings.HasPrefix(name, "bin") || strings.HasPrefix(name, "usr") || strings.HasPrefix(name, "sbin"), "no shell or tools: %s", name)
	}
	require.NotContains(t, files["(contents)"].Name, "nonroot:x:0:", "the user is not uid 0")
	require.Contains(t, files["(contents)"].Name, "nonroot:x:65532:65532:")
	for _, s := range []string{"k3y-that-must-not-bake", "token-that-must-not-bake"} {
		require.NotContains(t, string(cfgJSON), s)
		require.NotContains(t, files["(contents)"].Name, s)
	}
}

// The same inputs give the same image, byte for byte: the layout is
// reproducible, so its digest can be checked and signed.
func TestImageIsReproducible(t *testing.T) {
	_, _, _, a := built(t, time.Unix(1700000000, 0))
	_, _, _, b := built(t, time.Unix(1700000000, 0))
	require.Equal(t, a, b)
	_, _, _, c := built(t, time.Unix(1700000001, 0))
	require.NotEqual(t, a, c)
}

// The Dockerfile builds the image `make image` writes: same user,
// entrypoint, command, port, environment and working directory.
func TestDockerfileAgreesWithTheBuild(t *testing.T) {
	_, self, _, _ := runtime.Caller(0)
	f, err := os.Open(filepath.Join(filepath.Dir(self), "..", "..", "Dockerfile"))
	require.NoError(t, err)
	defer f.Close()
	final := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		word, rest, _ := strings.Cut(line, " ")
		if word == "FROM" {
			final = map[string]string{"FROM": rest}
			continue
		}
		final[word] = rest
	}
	require.NoError(t, sc.Err())
	require.Equal(t, "scratch", final["FROM"], "the final stage has nothing but what we copy in: no shell")
	require.Equal(t, image.User, final["USER"])
	require.Equal(t, strings.TrimSuffix(image.Port, "/tcp"), final["EXPOSE"])
	require.Equal(t, image.WorkingDir, final["WORKDIR"])
	require.Equal(t, strings.Join(image.Env, " "), final["ENV"])
	var ep, cmd []string
	require.NoError(t, json.Unmarshal([]byte(final["ENTRYPOINT"]), &ep))
	require.NoError(t, json.Unmarshal([]byte(final["CMD"]), &cmd))
	require.Equal(t, image.Entrypoint, ep)
	require.Equal(t, image.Cmd, cmd)
}
