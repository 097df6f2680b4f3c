package cli

import (
	"net/url"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestRedactURL(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want string }{
		{"https://api.vercel.com/v10/projects/prj_1/env?upsert=true&teamId=team_1", "https://api.vercel.com/v10/projects/prj_1/env?teamId=team_1&upsert=true"},
		{"https://user:hunter2@hooks.example.com/x?token=abc&access_key=def&X-Amz-Signature=0a1b&sessionid=s&page=2#frag",
			"https://hooks.example.com/x?X-Amz-Signature=REDACTED&access_key=REDACTED&page=2&sessionid=REDACTED&token=REDACTED"},
		{"http://127.0.0.1:8200/v1/secret/data/app", "http://127.0.0.1:8200/v1/secret/data/app"},
	}
	for _, tt := range tests {
		u, err := url.Parse(tt.in)
		require.NoError(t, err)
		require.Equal(t, tt.want, RedactURL(u))
	}
}
