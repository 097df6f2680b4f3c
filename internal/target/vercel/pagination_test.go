package vercel_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/rotorhq/rotor/internal/secret"
	"github.com/rotorhq/rotor/internal/target"
	"github.com/rotorhq/rotor/internal/target/targettest"
	"github.com/rotorhq/rotor/internal/target/vercel"
	"github.com/rotorhq/rotor/internal/target/vercel/vercelfake"
)

// seedBehindFillers seeds envs first and then n unrelated variables; the
// fake lists newest first, so envs end up on the last page.
func seedBehindFillers(f *vercelfake.Server, n int, envs ...vercelfake.Env) []string {
	ids := make([]string, len(envs))
	for i, e := range envs {
		ids[i] = f.SeedEnv(e)
	}
	for i := range n {
		f.SeedEnv(vercelfake.Env{Key: fmt.Sprintf("FILLER_%02d", i), Value: "filler", Target: []string{"production", "preview"}})
	}
	return ids
}

// listCalls returns the env list requests among calls.
func listCalls(calls []call) []call {
	var out []call
	for _, c := range calls {
		if c.method == http.MethodGet && strings.HasSuffix(c.path, "/env") {
			out = append(out, c)
		}
	}
	return out
}

// TestVariablesOnTheLastPage: DATABASE_URL exists twice (one variable for
// production, one for preview) behind 45 other variables, so at Vercel's
// default page size of 20 both sit on the third page. The target must
// find the production one there: read it back, leave it alone when it
// already holds the value, and update it in place otherwise.
func TestVariablesOnTheLastPage(t *testing.T) {
	t.Parallel()
	f := vercelfake.New(t, vercelfake.Options{TeamID: "team_7"})
	ids := seedBehindFillers(f, 45,
		vercelfake.Env{Key: "DATABASE_URL", Value: "postgres://app:old@host/db", Target: []string{"production"}},
		vercelfake.Env{Key: "DATABASE_URL", Value: "postgres://preview:pw@host/db", Target: []string{"preview"}},
	)
	prodID, previewID := ids[0], ids[1]
	total := len(f.Envs())
	rec := &recorder{}
	tg := newTargetWith(t, f, rec, "{team_id: team_7, environments: [production]}")

	// Every page is asked for, each with the team and the previous page's
	// cursor.
	check := func(want string) {
		t.Helper()
		before := len(rec.all())
		resp, err := tg.(target.Checker).Check(t.Context(), target.CheckRequest{Keys: []string{"DATABASE_URL"}})
		require.NoError(t, err)
		got, ok := resp.Values["DATABASE_URL"]
		require.True(t, ok, "Check must find DATABASE_URL on the last page; notes: %v", resp.Notes)
		require.True(t, secret.New(want).Equal(got), "Check read back the wrong value")
		lists := listCalls(rec.all()[before:])
		require.Len(t, lists, 3, "47 variables at 20 a page are 3 pages")
		require.Equal(t, "teamId=team_7", lists[0].query, "the first page is the plain request")
		for _, c := range lists[1:] {
			require.Contains(t, c.query, "teamId=team_7")
			require.Regexp(t, `(^|&)until=\d+($|&)`, c.query)
			require.NotContains(t, c.query, "limit=", "the endpoint does not document limit; rotor does not send it")
		}
		require.NotEqual(t, lists[1].query, lists[2].query, "each page must ask for a new cursor")
	}
	check("postgres://app:old@host/db")

	// The same value again: found and compared, nothing written.
	resp, err := tg.Put(t.Context(), putReq(map[string]secret.String{"DATABASE_URL": secret.New("postgres://app:old@host/db")}, "DATABASE_URL"))
	require.NoError(t, err)
	require.False(t, resp.Changed, "the variable on the last page already holds the value")
	require.Empty(t, f.Writes())

	// A new value: the existing variable is updated in place.
	fresh := secret.New("postgres://app:n3w@host/db")
	resp, err = tg.Put(t.Context(), putReq(map[string]secret.String{"DATABASE_URL": fresh}, "DATABASE_URL"))
	require.NoError(t, err)
	require.True(t, resp.Changed)
	require.Equal(t, prodID, resp.Ref, "the upsert must land on the existing variable")
	require.Len(t, f.Writes(), 1)
	require.Len(t, f.Envs(), total, "no variable may be created")
	prod, ok := f.Env("DATABASE_URL", "production")
	require.True(t, ok)
	require.Equal(t, prodID, prod.ID)
	require.True(t, fresh.Equal(secret.New(prod.Value)))
	preview, ok := f.Env("DATABASE_URL", "preview")
	require.True(t, ok)
	require.Equal(t, previewID, preview.ID)
	require.Equal(t, "postgres://preview:pw@host/db", preview.Value, "the preview variable is not this target's")

	check(fresh.Reveal())
}

// TestPutRefusesToRescopeOnALaterPage: the refusal to change a variable's
// environments must also see variables past the first page; otherwise the
// upsert would silently narrow a production+preview variable.
func TestPutRefusesToRescopeOnALaterPage(t *testing.T) {
	t.Parallel()
	f := vercelfake.New(t, vercelfake.Options{})
	f.SetPageSize(4)
	seedBehindFillers(f, 10, vercelfake.Env{Key: "DATABASE_URL", Value: "old", Target: []string{"production", "preview"}})
	tg := newTarget(t, f, "environments: [production]")
	_, err := tg.Put(t.Context(), putReq(map[string]secret.String{"DATABASE_URL": secret.New("postgres://new")}, "DATABASE_URL"))
	require.ErrorIs(t, err, target.ErrInvalid)
	require.ErrorContains(t, err, "already exists in project prj_rotor for preview+production")
	require.Empty(t, f.Writes())
	e, _ := f.Env("DATABASE_URL", "preview")
	require.Equal(t, "old", e.Value)
}

// scriptedAPI is a stand-in for Vercel whose env list answers with page(n,
// until) for the n-th list request; the variable env_db is DATABASE_URL
// for production holding dbValue.
type scriptedAPI struct {
	URL     string
	mu      sync.Mutex
	lists   int
	untils  []string
	writes  int
	dbValue string
}

func newScriptedAPI(t *testing.T, page func(n int, until string) (envs []map[string]any, pagination any)) *scriptedAPI {
	t.Helper()
	s := &scriptedAPI{dbValue: "postgres://app:pw@host/db"}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v10/projects/prj_rotor/env", func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.lists++
		n := s.lists
		until := r.URL.Query().Get("until")
		s.untils = append(s.untils, until)
		s.mu.Unlock()
		envs, pagination := page(n, until)
		body := map[string]any{"envs": envs}
		if pagination != nil {
			body["pagination"] = pagination
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(body)
	})
	mux.HandleFunc("GET /v1/projects/prj_rotor/env/env_db", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"id": "env_db", "key": "DATABASE_URL", "type": "encrypted", "target": []string{"production"}, "value": s.dbValue, "decrypted": true})
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.writes++
		s.mu.Unlock()
		http.Error(w, `{"error":{"code":"unexpected","message":"the test does not expect this call"}}`, http.StatusTeapot)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	s.URL = srv.URL
	return s
}

func (s *scriptedAPI) target(t *testing.T) target.Target {
	t.Helper()
	tg, err := vercel.New(target.Params{Name: "web", Decode: targettest.DecodeYAML(fmt.Sprintf("{project: prj_rotor, token: tok, environments: [production], api_url: %q}", s.URL))})
	require.NoError(t, err)
	return tg
}

func (s *scriptedAPI) counts() (lists, others int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lists, s.writes
}

func filler(id string) map[string]any {
	return map[string]any{"id": id, "key": "FILLER_" + id, "type": "encrypted", "target": []string{"production"}, "value": "enc:x"}
}

// TestListStopsOnEndlessPagination: an API that never ends the list, with a
// cursor that keeps moving or one that repeats (until ignored), gets a
// clear error instead of an endless loop, and nothing is written.
func TestListStopsOnEndlessPagination(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name      string
		page      func(n int, until string) ([]map[string]any, any)
		wantLists int
		wantErr   string
	}{
		{
			name: "next always moves on",
			page: func(n int, _ string) ([]map[string]any, any) {
				next := 1_700_000_000_000 - int64(n)
				return []map[string]any{filler(strconv.Itoa(n))}, map[string]any{"count": 1, "next": next, "prev": nil}
			},
			wantLists: 100,
			wantErr:   "the variable list still had more pages after 100 requests (pagination.next was never null); rotor stops rather than loop",
		},
		{
			name: "next repeats because until is ignored",
			page: func(int, string) ([]map[string]any, any) {
				return []map[string]any{filler("1")}, map[string]any{"count": 1, "next": 1555072968396, "prev": nil}
			},
			wantLists: 2,
			wantErr:   "page 2 of the variable list came back with pagination.next=1555072968396, a cursor Vercel had already given",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			api := newScriptedAPI(t, tc.page)
			tg := api.target(t)
			_, err := tg.Put(t.Context(), putReq(map[string]secret.String{"DATABASE_URL": secret.New("postgres://x")}, "DATABASE_URL"))
			require.ErrorContains(t, err, `vercel target "web": cannot list the project's variables before writing`)
			require.ErrorContains(t, err, tc.wantErr)
			var re *target.RetryableError
			require.NotErrorAs(t, err, &re, "repeating the same list would loop again")
			lists, others := api.counts()
			require.Equal(t, tc.wantLists, lists)
			require.Zero(t, others, "nothing but the list may be called")

			_, err = tg.(target.Checker).Check(t.Context(), target.CheckRequest{Keys: []string{"DATABASE_URL"}})
			require.ErrorContains(t, err, tc.wantErr)
		})
	}
}

// TestListKeepsEachVariableOnce: a variable listed on two pages (a
// boundary shared by two timestamp pages) is one variable, not a key split
// over two.
func TestListKeepsEachVariableOnce(t *testing.T) {
	t.Parallel()
	db := map[string]any{"id": "env_db", "key": "DATABASE_URL", "type": "encrypted", "target": []string{"production"}, "value": "enc:y", "createdAt": 200}
	api := newScriptedAPI(t, func(_ int, until string) ([]map[string]any, any) {
		if until == "" {
			return []map[string]any{filler("a"), db}, map[string]any{"count": 2, "next": 200, "prev": nil}
		}
		return []map[string]any{db, filler("b")}, map[string]any{"count": 2, "next": nil, "prev": 200}
	})
	tg := api.target(t)
	resp, err := tg.Put(t.Context(), putReq(map[string]secret.String{"DATABASE_URL": secret.New(api.dbValue)}, "DATABASE_URL"))
	require.NoError(t, err)
	require.False(t, resp.Changed, "env_db already holds the value")
	lists, others := api.counts()
	require.Equal(t, 2, lists)
	require.Equal(t, []string{"", "200"}, api.untils, "the second page is asked for with until=<next>")
	require.Zero(t, others)
}
