package cli

import (
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/stretchr/testify/require"
)

// Each table feeds argument strings through the real root command with the
// subcommand's runF capturing its options: what the flags mean is tested
// apart from what the commands do.

func TestRotateFlags(t *testing.T) {
	t.Parallel()
	tests := []struct {
		args     string
		want     RotateOptions
		wantJSON bool
		usage    string
	}{
		{args: "app", want: RotateOptions{Names: []string{"app"}, Parallel: 1}},
		{args: "app billing", want: RotateOptions{Names: []string{"app", "billing"}, Parallel: 1}},
		{args: "--due", want: RotateOptions{Due: true, Parallel: 1}},
		{args: "--all", want: RotateOptions{All: true, Parallel: 1}},
		{args: "app --revoke", want: RotateOptions{Names: []string{"app"}, Revoke: true, Parallel: 1}},
		{args: "--revoke app", want: RotateOptions{Names: []string{"app"}, Revoke: true, Parallel: 1}},
		{args: "app --force", want: RotateOptions{Names: []string{"app"}, Force: true, Parallel: 1}},
		{args: "app --progress", want: RotateOptions{Names: []string{"app"}, Progress: true, Parallel: 1}},
		{args: "--all -p 4", want: RotateOptions{All: true, Parallel: 4}},
		{args: "--due --parallel=2", want: RotateOptions{Due: true, Parallel: 2}},
		{args: "--due --revoke --force", want: RotateOptions{Due: true, Revoke: true, Force: true, Parallel: 1}},
		{args: "app --json", want: RotateOptions{Names: []string{"app"}, Parallel: 1}, wantJSON: true},
		{args: "", usage: "name the credential(s) to rotate, or pass --due (those the schedule says are due) or --all"},
		{args: "--revoke", usage: "name the credential(s) to rotate"},
		{args: "app --due", usage: "--due and --all select credentials themselves; do not also name any"},
		{args: "app --all", usage: "--due and --all select credentials themselves"},
		{args: "--due --all", usage: "--due and --all cannot be combined"},
		{args: "app -p 0", usage: "--parallel 0: must be at least 1"},
		{args: "app --parallel -1", usage: "--parallel -1: must be at least 1"},
		{args: "app --parallel many", usage: `invalid argument "many" for "-p, --parallel"`},
		{args: "app --revok", usage: "unknown flag: --revok"},
		{args: "app --due=maybe", usage: `invalid argument "maybe" for "--due"`},
	}
	for _, tt := range tests {
		t.Run(tt.args, func(t *testing.T) {
			t.Parallel()
			f, _ := newTestFactory(nil)
			var got *RotateOptions
			err := execSub(t, f, func(f *Factory) *cobra.Command {
				return NewCmdRotate(f, func(o *RotateOptions) error { got = o; return nil })
			}, strings.Fields(tt.args))
			if tt.usage != "" {
				requireUsage(t, err, tt.usage)
				require.Nil(t, got, "runF must not run after a usage error")
				return
			}
			require.NoError(t, err)
			require.Same(t, f, got.F)
			require.Equal(t, tt.wantJSON, f.JSON)
			got.F = nil
			if len(got.Names) == 0 {
				got.Names = nil
			}
			require.Equal(t, tt.want, *got)
		})
	}
}

func TestResumeFlags(t *testing.T) {
	t.Parallel()
	tests := []struct {
		args  string
		want  RotateOptions
		usage string
	}{
		{args: "", want: RotateOptions{ResumeOnly: true}},
		{args: "app", want: RotateOptions{ResumeOnly: true, Names: []string{"app"}}},
		{args: "app billing --progress", want: RotateOptions{ResumeOnly: true, Names: []string{"app", "billing"}, Progress: true}},
		{args: "--abandon app", want: RotateOptions{ResumeOnly: true, Abandon: "app"}},
		{args: "--abandon=app", want: RotateOptions{ResumeOnly: true, Abandon: "app"}},
		{args: "--abandon app billing", usage: "--abandon takes the credential name itself; do not also name others"},
		{args: "--abandon", usage: "flag needs an argument: --abandon"},
		{args: "--due", usage: "unknown flag: --due"},
	}
	for _, tt := range tests {
		t.Run(tt.args, func(t *testing.T) {
			t.Parallel()
			f, _ := newTestFactory(nil)
			var got *RotateOptions
			err := execSub(t, f, func(f *Factory) *cobra.Command {
				return NewCmdResume(f, func(o *RotateOptions) error { got = o; return nil })
			}, strings.Fields(tt.args))
			if tt.usage != "" {
				requireUsage(t, err, tt.usage)
				require.Nil(t, got)
				return
			}
			require.NoError(t, err)
			got.F = nil
			if len(got.Names) == 0 {
				got.Names = nil
			}
			require.Equal(t, tt.want, *got)
		})
	}
}

func TestStatusFlags(t *testing.T) {
	t.Parallel()
	tests := []struct {
		args  string
		want  StatusOptions
		usage string
	}{
		{args: "", want: StatusOptions{}},
		{args: "app billing", want: StatusOptions{Names: []string{"app", "billing"}}},
		{args: "--live", want: StatusOptions{Live: true}},
		{args: "app --live", want: StatusOptions{Names: []string{"app"}, Live: true}},
		{args: "--lve", usage: "unknown flag: --lve"},
	}
	for _, tt := range tests {
		t.Run(tt.args, func(t *testing.T) {
			t.Parallel()
			f, _ := newTestFactory(nil)
			var got *StatusOptions
			err := execSub(t, f, func(f *Factory) *cobra.Command {
				return NewCmdStatus(f, func(o *StatusOptions) error { got = o; return nil })
			}, strings.Fields(tt.args))
			if tt.usage != "" {
				requireUsage(t, err, tt.usage)
				require.Nil(t, got)
				return
			}
			require.NoError(t, err)
			got.F = nil
			if len(got.Names) == 0 {
				got.Names = nil
			}
			require.Equal(t, tt.want, *got)
		})
	}
}

func TestPlanAndValidateFlags(t *testing.T) {
	t.Parallel()
	tests := []struct {
		args  string
		want  PlanOptions
		usage string
	}{
		{args: "", want: PlanOptions{}},
		{args: "--offline", want: PlanOptions{Offline: true}},
		{args: "app --offline", want: PlanOptions{Names: []string{"app"}, Offline: true}},
		{args: "a b", want: PlanOptions{Names: []string{"a", "b"}}},
		{args: "--ofline", usage: "unknown flag: --ofline"},
	}
	for _, tt := range tests {
		t.Run("plan "+tt.args, func(t *testing.T) {
			t.Parallel()
			f, _ := newTestFactory(nil)
			var got *PlanOptions
			err := execSub(t, f, func(f *Factory) *cobra.Command {
				return NewCmdPlan(f, func(o *PlanOptions) error { got = o; return nil })
			}, strings.Fields(tt.args))
			if tt.usage != "" {
				requireUsage(t, err, tt.usage)
				return
			}
			require.NoError(t, err)
			got.F = nil
			if len(got.Names) == 0 {
				got.Names = nil
			}
			require.Equal(t, tt.want, *got)
		})
		t.Run("validate "+tt.args, func(t *testing.T) {
			t.Parallel()
			f, _ := newTestFactory(nil)
			var got *ValidateOptions
			err := execSub(t, f, func(f *Factory) *cobra.Command {
				return NewCmdValidate(f, func(o *ValidateOptions) error { got = o; return nil })
			}, strings.Fields(tt.args))
			if tt.usage != "" {
				requireUsage(t, err, tt.usage)
				return
			}
			require.NoError(t, err)
			got.F = nil
			if len(got.Names) == 0 {
				got.Names = nil
			}
			require.Equal(t, ValidateOptions(tt.want), *got)
		})
	}
}

func TestHistoryFlags(t *testing.T) {
	t.Parallel()
	tests := []struct {
		args  string
		want  HistoryOptions
		usage string
	}{
		{args: "", want: HistoryOptions{Limit: 50}},
		{args: "app", want: HistoryOptions{Name: "app", Limit: 50}},
		{args: "-n 5", want: HistoryOptions{Limit: 5}},
		{args: "app -n5", want: HistoryOptions{Name: "app", Limit: 5}},
		{args: "--limit 200 app", want: HistoryOptions{Name: "app", Limit: 200}},
		{args: "a b", usage: "accepts at most 1 arg(s), received 2 (see `rotor history --help`)"},
		{args: "-n ten", usage: `invalid argument "ten" for "-n, --limit"`},
		{args: "-n", usage: "flag needs an argument: 'n' in -n"},
	}
	for _, tt := range tests {
		t.Run(tt.args, func(t *testing.T) {
			t.Parallel()
			f, _ := newTestFactory(nil)
			var got *HistoryOptions
			err := execSub(t, f, func(f *Factory) *cobra.Command {
				return NewCmdHistory(f, func(o *HistoryOptions) error { got = o; return nil })
			}, strings.Fields(tt.args))
			if tt.usage != "" {
				requireUsage(t, err, tt.usage)
				require.Nil(t, got)
				return
			}
			require.NoError(t, err)
			got.F = nil
			require.Equal(t, tt.want, *got)
		})
	}
}

func TestInitFlags(t *testing.T) {
	t.Parallel()
	tests := []struct {
		args  string
		want  InitOptions
		usage string
	}{
		{args: "", want: InitOptions{Credential: "app-db", Strategy: "dual"}},
		{args: "--strategy single", want: InitOptions{Credential: "app-db", Strategy: "single"}},
		{args: "--strategy=dual --credential billing --force --print", want: InitOptions{Credential: "billing", Strategy: "dual", Force: true, Print: true}},
		{args: "--strategy bad", usage: `--strategy "bad": use dual or single`},
		{args: "--strategy Dual", usage: `--strategy "Dual": use dual or single`},
		{args: "--strategy=", usage: `--strategy "": use dual or single`},
		{args: "rotor.yaml", usage: `unknown command "rotor.yaml" for "rotor init" (see ` + "`rotor init --help`)"},
	}
	for _, tt := range tests {
		t.Run(tt.args, func(t *testing.T) {
			t.Parallel()
			f, _ := newTestFactory(nil)
			var got *InitOptions
			err := execSub(t, f, func(f *Factory) *cobra.Command {
				return NewCmdInit(f, func(o *InitOptions) error { got = o; return nil })
			}, strings.Fields(tt.args))
			if tt.usage != "" {
				requireUsage(t, err, tt.usage)
				require.Nil(t, got)
				return
			}
			require.NoError(t, err)
			got.F = nil
			require.Equal(t, tt.want, *got)
		})
	}
}

func TestSetupRolesAndDemoFlags(t *testing.T) {
	t.Parallel()
	t.Run("setup-roles needs a name", func(t *testing.T) {
		t.Parallel()
		f, _ := newTestFactory(nil)
		err := execSub(t, f, func(f *Factory) *cobra.Command {
			return NewCmdSetupRoles(f, func(*SetupRolesOptions) error { return nil })
		}, nil)
		requireUsage(t, err, "requires at least 1 arg(s), only received 0")
	})
	t.Run("setup-roles names", func(t *testing.T) {
		t.Parallel()
		f, _ := newTestFactory(nil)
		var got *SetupRolesOptions
		err := execSub(t, f, func(f *Factory) *cobra.Command {
			return NewCmdSetupRoles(f, func(o *SetupRolesOptions) error { got = o; return nil })
		}, []string{"app", "billing"})
		require.NoError(t, err)
		require.Equal(t, []string{"app", "billing"}, got.Names)
	})
	t.Run("demo", func(t *testing.T) {
		t.Parallel()
		f, _ := newTestFactory(nil)
		var got *DemoOptions
		err := execSub(t, f, func(f *Factory) *cobra.Command {
			return NewCmdDemo(f, func(o *DemoOptions) error { got = o; return nil })
		}, []string{"--keep", "--rotations", "5", "--dir", "/tmp/x"})
		require.NoError(t, err)
		got.F = nil
		require.Equal(t, DemoOptions{Dir: "/tmp/x", Keep: true, Rotations: 5}, *got)
	})
	t.Run("demo takes no arguments", func(t *testing.T) {
		t.Parallel()
		f, _ := newTestFactory(nil)
		err := execSub(t, f, func(f *Factory) *cobra.Command {
			return NewCmdDemo(f, func(*DemoOptions) error { return nil })
		}, []string{"now"})
		requireUsage(t, err, `unknown command "now" for "rotor demo"`)
	})
}

func TestGlobalFlags(t *testing.T) {
	t.Parallel()
	f, _ := newTestFactory(nil)
	err := execSub(t, f, func(f *Factory) *cobra.Command {
		return NewCmdStatus(f, func(*StatusOptions) error { return nil })
	}, []string{"-c", "conf/r.yaml", "--state", "sqlite:///tmp/s.db", "--json", "--debug"})
	require.NoError(t, err)
	require.Equal(t, "conf/r.yaml", f.ConfigPath)
	require.Equal(t, "conf/r.yaml", f.configPath())
	require.Equal(t, "sqlite:///tmp/s.db", f.StatePath)
	require.True(t, f.JSON)
	require.True(t, f.Debug)
}

func TestConfigPathResolution(t *testing.T) {
	t.Parallel()
	tests := []struct {
		flag string
		env  testEnv
		want string
	}{
		{want: "rotor.yaml"},
		{env: testEnv{"ROTOR_CONFIG": "/etc/rotor/rotor.yaml"}, want: "/etc/rotor/rotor.yaml"},
		{flag: "mine.yaml", env: testEnv{"ROTOR_CONFIG": "/etc/rotor/rotor.yaml"}, want: "mine.yaml"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			t.Parallel()
			f, _ := newTestFactory(tt.env)
			f.ConfigPath = tt.flag
			require.Equal(t, tt.want, f.configPath())
		})
	}
}
