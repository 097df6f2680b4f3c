package cli

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestConnstrRedactKeepsEverythingElse pipes the inputs of issue 13 through
// `rotor connstr redact`: no secret survives, and every other byte,
// the final newline included, comes back as it was.
func TestConnstrRedactKeepsEverythingElse(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want string }{
		{"postgresql://u:" + canary + "@h/db sslmode=require password=" + canary + "\n",
			"postgresql://u:REDACTED@h/db sslmode=require password=REDACTED\n"},
		{"mysql://u:" + canary + "@h/db\n", "mysql://u:REDACTED@h/db\n"},
		{"redis://:" + canary + "@h:6379\n", "redis://:REDACTED@h:6379\n"},
		{"https://user:" + canary + "@host/x\n", "https://user:REDACTED@host/x\n"},
		{`{"user":"u","password":"` + canary + `"}` + "\n", `{"user":"u","password":"REDACTED"}` + "\n"},
		{"postgresql://u:" + canary + "@h1,h2:5433/db\n", "postgresql://u:REDACTED@h1,h2:5433/db\n"},
		{"PGPASSWORD='" + canary + "'\nPGHOST=h\n", "PGPASSWORD='REDACTED'\nPGHOST=h\n"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			t.Parallel()
			code, out, errOut := run(t, nil, tt.in, "connstr", "redact")
			require.Equal(t, ExitOK, code, errOut)
			require.NotContains(t, out+errOut, canary)
			require.Equal(t, tt.want, out)
		})
	}
}

func TestConnstrParseHostList(t *testing.T) {
	t.Parallel()
	in := "postgresql://u:" + canary + "@h1,h2:5433/db\n"
	t.Run("text", func(t *testing.T) {
		t.Parallel()
		code, out, errOut := run(t, nil, in, "connstr", "parse")
		require.Equal(t, ExitOK, code, errOut)
		require.Contains(t, out, "host      h1 port default\nhost      h2 port 5433\n")
		require.NotContains(t, out, ",5433")
		require.NotContains(t, out+errOut, canary)
	})
	t.Run("json", func(t *testing.T) {
		t.Parallel()
		code, out, errOut := run(t, nil, in, "connstr", "parse", "--json")
		require.Equal(t, ExitOK, code, errOut)
		require.NotContains(t, out+errOut, canary)
		var got struct {
			Hosts []map[string]string `json:"hosts"`
		}
		require.NoError(t, json.Unmarshal([]byte(out), &got))
		require.Equal(t, []map[string]string{{"host": "h1", "port": ""}, {"host": "h2", "port": "5433"}}, got.Hosts)
	})
	t.Run("lists that do not pair up", func(t *testing.T) {
		t.Parallel()
		code, out, errOut := run(t, nil, "host=h1,h2,h3 port=1,2 password="+canary, "connstr", "parse")
		require.Equal(t, ExitUsage, code)
		require.Empty(t, out)
		require.Contains(t, errOut, "2 ports for 3 hosts")
		require.NotContains(t, errOut, canary)
	})
}
