package connstr

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestNeonHosts(t *testing.T) {
	t.Parallel()
	const (
		direct = "ep-cool-darkness-a1b2c3d4.us-east-2.aws.neon.tech"
		pooled = "ep-cool-darkness-a1b2c3d4-pooler.us-east-2.aws.neon.tech"
	)
	tests := []struct {
		host       string
		isNeon     bool
		wantPooled string // "" means PooledHost fails
		wantDirect string
	}{
		{direct, true, pooled, direct},
		{pooled, true, pooled, direct},
		{"ep-x.c-2.us-east-2.aws.neon.tech", true, "ep-x-pooler.c-2.us-east-2.aws.neon.tech", "ep-x.c-2.us-east-2.aws.neon.tech"},
		{"EP-Cool-A1-POOLER.EastUS2.Azure.Neon.Tech", true, "EP-Cool-A1-POOLER.EastUS2.Azure.Neon.Tech", "EP-Cool-A1.EastUS2.Azure.Neon.Tech"},
		{"ep-x.neon.tech", true, "ep-x-pooler.neon.tech", "ep-x.neon.tech"},
		{"ep--pooler.neon.tech", true, "ep--pooler-pooler.neon.tech", "ep--pooler.neon.tech"},
		{"db.example.com", false, "", "db.example.com"},
		{"db-pooler.example.com", false, "", "db-pooler.example.com"},
		{"ep-x.evilneon.tech", false, "", "ep-x.evilneon.tech"},
		{"ep-x.neon.tech.evil.com", false, "", "ep-x.neon.tech.evil.com"},
		{"console.neon.tech", false, "", "console.neon.tech"},
		{"ep-.neon.tech", false, "", "ep-.neon.tech"},
		{"ep-x.neon.build", false, "", "ep-x.neon.build"},
		{"ep-a.neon.tech,ep-b.neon.tech", false, "", "ep-a.neon.tech,ep-b.neon.tech"},
		{"ep-x..neon.tech", false, "", "ep-x..neon.tech"},
		{"", false, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.host, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tt.isNeon, IsNeonHost(tt.host))
			require.Equal(t, tt.wantDirect, DirectHost(tt.host))
			got, err := PooledHost(tt.host)
			if tt.wantPooled == "" {
				require.ErrorIs(t, err, ErrNotNeonHost)
				require.Contains(t, err.Error(), "set pooled_host explicitly")
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.wantPooled, got)
			again, err := PooledHost(got)
			require.NoError(t, err)
			require.Equal(t, got, again, "PooledHost is idempotent")
			require.Equal(t, DirectHost(got), DirectHost(DirectHost(got)), "DirectHost is idempotent")
		})
	}
}

func TestConnPooledDirect(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		in         string
		wantPooled string // "" means Pooled fails
		wantDirect string
	}{
		{
			name:       "neon",
			in:         "postgresql://u:pw@ep-a-1.eu-central-1.aws.neon.tech/db?sslmode=require",
			wantPooled: "postgresql://u:REDACTED@ep-a-1-pooler.eu-central-1.aws.neon.tech/db?sslmode=require",
			wantDirect: "postgresql://u:REDACTED@ep-a-1.eu-central-1.aws.neon.tech/db?sslmode=require",
		},
		{
			name:       "already pooled",
			in:         "postgresql://u:pw@ep-a-1-pooler.eu-central-1.aws.neon.tech/db",
			wantPooled: "postgresql://u:REDACTED@ep-a-1-pooler.eu-central-1.aws.neon.tech/db",
			wantDirect: "postgresql://u:REDACTED@ep-a-1.eu-central-1.aws.neon.tech/db",
		},
		{
			name:       "not neon",
			in:         "postgresql://u:pw@db.example.com/db",
			wantDirect: "postgresql://u:REDACTED@db.example.com/db",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, err := Parse(tt.in)
			require.NoError(t, err)
			require.Equal(t, tt.wantDirect, c.Direct().Redacted())
			p, err := c.Pooled()
			if tt.wantPooled == "" {
				require.ErrorIs(t, err, ErrNotNeonHost)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.wantPooled, p.Redacted())
			require.True(t, p.Password.Equal(c.Password))
		})
	}
}
