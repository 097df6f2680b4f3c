package kubernetes_test

import (
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"k8s.io/client-go/rest"

	"github.com/rotorhq/rotor/internal/target"
	"github.com/rotorhq/rotor/internal/target/kubernetes"
	"github.com/rotorhq/rotor/internal/target/targettest"
)

// TestAPIClientRequests: the target's own HTTP client keeps a server URL's
// path prefix (API servers behind a proxy such as Rancher's), says who it
// is, and makes a bare status code without a Status body (a proxy's 503
// page) the same retryable error, with the Retry-After the answer gave.
func TestAPIClientRequests(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var seen []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Method+" "+r.URL.Path+" "+r.Header.Get("User-Agent")+" "+r.Header.Get("Accept"))
		mu.Unlock()
		w.Header().Set("Retry-After", "9")
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte("<html>upstream unavailable</html>"))
	}))
	t.Cleanup(srv.Close)
	tg, err := kubernetes.NewWithConfig(target.Params{Name: "k8s", Getenv: targettest.MapEnv(nil),
		Decode: targettest.DecodeYAML("{namespace: shop, secret_name: app-env}")}, &rest.Config{Host: srv.URL + "/k8s/clusters/c-1"})
	require.NoError(t, err)
	_, err = tg.(target.Checker).Check(t.Context(), target.CheckRequest{Keys: []string{"DATABASE_URL"}})
	var re *target.RetryableError
	require.ErrorAs(t, err, &re)
	require.Equal(t, 9*time.Second, re.RetryAfter)
	require.ErrorContains(t, err, `kubernetes target "k8s": get secret shop/app-env: the API server is busy or failing`)
	mu.Lock()
	defer mu.Unlock()
	require.Equal(t, []string{"GET /k8s/clusters/c-1/api/v1/namespaces/shop/secrets/app-env rotor application/json"}, seen)
}

func TestNewWithConfigNeedsConfig(t *testing.T) {
	t.Parallel()
	_, err := kubernetes.NewWithConfig(target.Params{Name: "k8s", Decode: targettest.DecodeYAML("{namespace: shop, secret_name: app-env}")}, nil)
	require.ErrorIs(t, err, target.ErrInvalid)
}
