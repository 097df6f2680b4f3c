package resolve_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/rotorhq/rotor/internal/config"
	"github.com/rotorhq/rotor/internal/provider"
	"github.com/rotorhq/rotor/internal/resolve"
	"github.com/rotorhq/rotor/internal/target"
)

// Info makes the test's file target say where it writes, as real targets
// do: the cross-credential check compares destinations.
func (f *fileTarget) Info() target.Info {
	return target.Info{Type: "file", Name: "env", Destination: f.path, Idempotent: true}
}

// replicaProvider discovers endpoints and can be told a template needs a
// read replica, as the neon provider can.
type replicaProvider struct {
	discovering
	required *bool
}

func (p *replicaProvider) RequireReplica() { *p.required = true }

func withReplicas(reg resolve.Registry, closed *int, required *bool) resolve.Registry {
	inner := reg.Provider
	reg.Provider = func(typ string) (provider.Factory, error) {
		if typ != "replicas" {
			return inner(typ)
		}
		return func(p provider.Params) (provider.Provider, error) {
			var o struct {
				AdminURL string `yaml:"admin_url"`
			}
			if err := p.Decode(&o); err != nil {
				return nil, err
			}
			return &replicaProvider{discovering: discovering{plainProvider{closed: closed}}, required: required}, nil
		}, nil
	}
	return reg
}

// Two databases imported into one .env: the second credential would
// overwrite the first's DATABASE_URL. Load refuses, at the second.
func TestSameKeyOfSameTarget(t *testing.T) {
	t.Parallel()
	closed := 0
	shared := func(name string) string {
		return strings.Replace(credential(name, "discovering", ""), "path: "+name+".env", "path: app.env", 1)
	}
	src := "version: 1\ncredentials:\n" + shared("neondb") + shared("shop")
	_, err := resolve.Parse("rotor.yaml", []byte(src), env, registry(&closed))
	var errs config.Errors
	require.ErrorAs(t, err, &errs)
	require.Len(t, errs, 1, "%v", err)
	second := strings.Index(src, "  shop:")
	require.Equal(t, lineOf(t, src[second:], "name: env")+strings.Count(src[:second], "\n"), errs[0].Line)
	require.Contains(t, errs[0].Msg, "credentials.shop.targets[0] (env) writes DATABASE_URL to file app.env, which credentials.neondb.targets[0] (env)")
	require.Contains(t, errs[0].Msg, "writes too, so one would overwrite the other")
	require.Contains(t, errs[0].Msg, "a prefix, e.g. SHOP_DATABASE_URL")

	// Different keys, or different files: fine.
	prefixed := strings.Replace(shared("shop"), "DATABASE_URL:", "SHOP_DATABASE_URL:", 1)
	cfg, err := resolve.Parse("rotor.yaml", []byte("version: 1\ncredentials:\n"+shared("neondb")+prefixed), env, registry(&closed))
	require.NoError(t, err)
	require.NoError(t, cfg.Close())
	cfg, err = resolve.Parse("rotor.yaml", []byte("version: 1\ncredentials:\n"+credential("neondb", "discovering", "")+credential("shop", "discovering", "")), env, registry(&closed))
	require.NoError(t, err)
	require.NoError(t, cfg.Close())
}

func TestReplicaURLNeedsAProviderThatFindsOne(t *testing.T) {
	t.Parallel()
	closed := 0
	replica := func(name, typ, extra string) string {
		return strings.Replace(credential(name, typ, extra), `values: {DATABASE_URL: "{{.URL}}"}`, `values: {DATABASE_URL: "{{.URL}}", READ_URL: "{{.ReplicaURL}}"}`, 1)
	}
	required := false
	reg := withReplicas(registry(&closed), &closed, &required)

	cfg, err := resolve.Parse("rotor.yaml", []byte("version: 1\ncredentials:\n"+replica("ro", "replicas", "")), env, reg)
	require.NoError(t, err)
	require.True(t, required, "validate will check that the replica exists")
	require.NoError(t, cfg.Close())

	for _, tt := range []struct{ name, typ, extra, want string }{
		{"no replica source", "plain", "    connection: {url: \"postgresql://db/app\"}\n", "uses {{.ReplicaURL}}, but the plain provider has no read replica to fill it"},
		{"endpoints not discovered", "replicas", "    connection: {url: \"postgresql://db/app\"}\n", "but connection.url is set"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := resolve.Parse("rotor.yaml", []byte("version: 1\ncredentials:\n"+replica("ro", tt.typ, tt.extra)), env, reg)
			var errs config.Errors
			require.ErrorAs(t, err, &errs)
			require.Len(t, errs, 1, "%v", err)
			require.Contains(t, errs[0].Msg, "credentials.ro: env.READ_URL uses {{.ReplicaURL}}")
			require.Contains(t, errs[0].Msg, tt.want)
		})
	}
}
