package gitlab

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// GitLab's error bodies come in three shapes (docs.gitlab.com/api/rest,
// "Data validation and error reporting"), and proxies in front of a
// self-managed GitLab answer with HTML.
func TestErrorText(t *testing.T) {
	t.Parallel()
	for body, want := range map[string]string{
		`{"message":"404 Project Not Found"}`:                                                  "404 Project Not Found",
		`{"message":{"value":["is invalid"],"key":["(DATABASE_URL) has already been taken"]}}`: "key: (DATABASE_URL) has already been taken; value: is invalid",
		`{"error":"filter is invalid"}`:                                                        "filter is invalid",
		`{"message":{"masked":"cannot be disabled"}}`:                                          "masked: cannot be disabled",
		"<html>\n  <h1>502 Bad   Gateway</h1></html>":                                          "<html> <h1>502 Bad Gateway</h1></html>",
	} {
		code, got := errorText([]byte(body))
		require.Empty(t, code)
		require.Equal(t, want, got, body)
	}
}
