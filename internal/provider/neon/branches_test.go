package neon_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/rotorhq/rotor/internal/engine"
	"github.com/rotorhq/rotor/internal/pgtest"
	"github.com/rotorhq/rotor/internal/provider"
	"github.com/rotorhq/rotor/internal/provider/neon"
	"github.com/rotorhq/rotor/internal/provider/neon/neonfake"
	"github.com/rotorhq/rotor/internal/secret"
	"github.com/rotorhq/rotor/internal/store"
)

// branchedWorld is a project whose main branch has two children, dev and
// preview, each on a cluster of its own, made after role was created: they
// start with role and its password, as Neon's branches do.
func branchedWorld(t *testing.T, role string, pw secret.String) (*world, []*neonfake.Branch) {
	t.Helper()
	extra := twoMoreClusters(t)
	w := newWorld(t, neonfake.Config{})
	pgtest.NewRole(t, w.main.Cluster, role, pw)
	var children []*neonfake.Branch
	for i, name := range []string{"dev", "preview"} {
		b, err := w.fake.AddBranch(t.Context(), neonfake.BranchSpec{Name: name, Parent: "main", Cluster: extra[i]})
		require.NoError(t, err)
		children = append(children, b)
	}
	return w, children
}

func loginOn(t *testing.T, w *world, b *neonfake.Branch, role string, pw secret.String) error {
	return pgtest.CanLogin(t.Context(), b.Cluster.URL(role, pw, w.db, "channel_binding=require"))
}

func TestRotateAllBranches(t *testing.T) {
	t.Parallel()
	for _, method := range []string{neon.MethodSQL, neon.MethodAPI} {
		t.Run(method, func(t *testing.T) {
			t.Parallel()
			role, oldPW := pgtest.UniqueName(t, "app"), secret.New("Old-pw-"+pgtest.UniqueName(t, "x"))
			w, children := branchedWorld(t, role, oldPW)
			branches := append([]*neonfake.Branch{w.main}, children...)
			for _, b := range branches {
				require.NoError(t, loginOn(t, w, b, role, oldPW), "branch %s starts with the parent's password", b.Name)
			}
			r := newRig(t, w, rigOpts{method: method, strategy: "single", roles: []string{role}, provider: []string{"branches: all"}})

			res, err := r.eng.Rotate(t.Context(), r.cred(), engine.Options{})
			require.NoError(t, err)
			require.Equal(t, store.StatusSucceeded, res.Status)
			detail := stepDetail(res, engine.StepApply)
			for _, b := range branches {
				require.Contains(t, detail, b.Name)
			}
			_, newPW := r.published()
			for _, b := range branches {
				require.Error(t, loginOn(t, w, b, role, oldPW), "the old password must fail on branch %s", b.Name)
			}
			require.NoError(t, loginOn(t, w, w.main, role, newPW))
			for _, b := range children {
				err := loginOn(t, w, b, role, newPW)
				if method == neon.MethodSQL {
					require.NoError(t, err, "sql sets the same verifier on branch %s", b.Name)
				} else {
					require.Error(t, err, "api gives branch %s a password of its own, which nobody kept", b.Name)
				}
			}
			report, err := r.cred().Provider.(provider.Reporter).Report(t.Context(), provider.ReportRequest{Roles: []string{role}})
			require.NoError(t, err)
			require.Empty(t, report.Warnings, "every branch is rotated")
		})
	}
}

func TestReportWarnsAboutBranchesLeftOut(t *testing.T) {
	t.Parallel()
	role, oldPW := pgtest.UniqueName(t, "app"), secret.New("Old-pw-"+pgtest.UniqueName(t, "x"))
	w, children := branchedWorld(t, role, oldPW)
	r := newRig(t, w, rigOpts{method: neon.MethodSQL, strategy: "single", roles: []string{role}})

	_, err := r.eng.Rotate(t.Context(), r.cred(), engine.Options{})
	require.NoError(t, err)
	require.Error(t, w.login(role, oldPW))
	for _, b := range children {
		require.NoError(t, loginOn(t, w, b, role, oldPW), "a reset applies to one branch only; %s keeps the old password", b.Name)
	}

	report, err := r.cred().Provider.(provider.Reporter).Report(t.Context(), provider.ReportRequest{Roles: []string{role, "someone_else"}})
	require.NoError(t, err)
	require.Len(t, report.Warnings, 2)
	for i, b := range children {
		require.Contains(t, report.Warnings[i], "branch "+b.Name+" ("+b.ID+")")
		require.Contains(t, report.Warnings[i], "role "+role)
		require.Contains(t, report.Warnings[i], "branches: all")
	}
	require.NotContains(t, strings.Join(report.Warnings, "\n"), "someone_else")
}

func TestNamedBranches(t *testing.T) {
	t.Parallel()
	role, oldPW := pgtest.UniqueName(t, "app"), secret.New("Old-pw-"+pgtest.UniqueName(t, "x"))
	w, children := branchedWorld(t, role, oldPW)
	dev, preview := children[0], children[1]
	// By name and by id; the default branch goes first whatever the order.
	p := w.newProvider(neon.MethodSQL, "database: "+w.db, "branches: ["+preview.ID+", main]")
	newPW := secret.New("New-pw-" + pgtest.UniqueName(t, "y"))
	v, err := secret.SCRAMVerifier(nil, newPW)
	require.NoError(t, err)
	resp, err := p.SetPassword(t.Context(), provider.SetPasswordRequest{Role: role, Password: newPW, Verifier: v})
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(resp.Detail, "plaintext password set over verified TLS and proven by a login on branches main, preview; "), resp.Detail)
	require.Empty(t, secret.Leaks([]byte(resp.Detail), newPW))
	require.NoError(t, loginOn(t, w, w.main, role, newPW))
	require.NoError(t, loginOn(t, w, preview, role, newPW))
	require.NoError(t, loginOn(t, w, dev, role, oldPW), "dev is not configured")

	report, err := p.(provider.Reporter).Report(t.Context(), provider.ReportRequest{Roles: []string{role}})
	require.NoError(t, err)
	require.Len(t, report.Warnings, 1)
	require.Contains(t, report.Warnings[0], "branch dev")
	require.Len(t, report.Facts, 2, "project and branches, endpoint")
	require.Contains(t, report.Facts[0], "neon project "+w.fake.ProjectID+", database "+w.db+", branches main ("+w.main.ID+"), preview ("+preview.ID+"), method sql")
	require.Equal(t, "endpoint "+w.main.EndpointID+": direct host "+w.main.Host+", pooled host "+w.main.EndpointID+"-pooler"+strings.TrimPrefix(w.main.Host, w.main.EndpointID), report.Facts[1])

	bad := w.newProvider(neon.MethodSQL, "database: "+w.db, "branches: [main, staging]")
	_, err = bad.Check(t.Context(), provider.CheckRequest{})
	require.ErrorIs(t, err, provider.ErrInvalid)
	require.ErrorContains(t, err, `no branch "staging" (branches: main, dev, preview)`)
}
