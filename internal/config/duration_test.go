package config_test

import (
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"github.com/rotorhq/rotor/internal/config"
)

func TestParseDuration(t *testing.T) {
	t.Parallel()
	const day = 24 * time.Hour
	tests := []struct {
		in      string
		want    time.Duration
		wantErr string
	}{
		{in: "90s", want: 90 * time.Second},
		{in: "15m", want: 15 * time.Minute},
		{in: "1h30m", want: 90 * time.Minute},
		{in: "30d", want: 30 * day},
		{in: " 30d ", want: 30 * day},
		{in: "0d", want: 0},
		{in: "1.5d", want: 36 * time.Hour},
		{in: "1d12h", want: 36 * time.Hour},
		{in: "2d30m", want: 2*day + 30*time.Minute},
		{in: "", wantErr: "empty duration; write e.g. 90s, 15m, 12h or 30d"},
		{in: "5x", wantErr: `bad duration "5x"; write e.g. 90s, 15m, 12h or 30d`},
		{in: "30", wantErr: `bad duration "30"`},
		{in: "d", wantErr: `bad duration "d"`},
		{in: "1d12x", wantErr: `bad duration "1d12x"`},
		{in: "1d1d", wantErr: `bad duration "1d1d"`},
		{in: "-1d", wantErr: `bad duration "-1d"`},
		{in: "-5m", wantErr: `bad duration "-5m"`},
		{in: "1d-2h", wantErr: `bad duration "1d-2h"`},
		{in: "+1d", wantErr: `bad duration "+1d"`},
		{in: "Infd", wantErr: `bad duration "Infd"`},
		{in: "NaNd", wantErr: `bad duration "NaNd"`},
		{in: "1e3d", wantErr: `bad duration "1e3d"`},
		{in: "0x10d", wantErr: `bad duration "0x10d"`},
		{in: "200000d", wantErr: `bad duration "200000d"`},
		{in: "106000d2562047h", wantErr: `bad duration "106000d2562047h"`},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			t.Parallel()
			got, err := config.ParseDuration(tt.in)
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
		})
	}
}

func TestParseDurationLargest(t *testing.T) {
	t.Parallel()
	got, err := config.ParseDuration("106751d")
	require.NoError(t, err)
	require.Positive(t, got)
	require.Less(t, int64(got), int64(math.MaxInt64))
}

func TestFormatDuration(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   time.Duration
		want string
	}{
		{30 * 24 * time.Hour, "30d"},
		{24 * time.Hour, "1d"},
		{36 * time.Hour, "36h0m0s"},
		{90 * time.Second, "1m30s"},
		{0, "0s"},
		{-24 * time.Hour, "-24h0m0s"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tt.want, config.FormatDuration(tt.in))
			require.Equal(t, tt.want, config.Duration(tt.in).String())
		})
	}
}

func TestDurationYAML(t *testing.T) {
	t.Parallel()
	var v struct {
		D config.Duration `yaml:"d"`
	}
	require.NoError(t, yaml.Unmarshal([]byte("d: 2d"), &v))
	require.Equal(t, 48*time.Hour, v.D.D())
	require.ErrorContains(t, yaml.Unmarshal([]byte("d: 2x"), &v), `bad duration "2x"`)

	out, err := yaml.Marshal(v)
	require.NoError(t, err)
	require.Equal(t, "d: 2d\n", string(out))
}
