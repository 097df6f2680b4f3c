package dotenv_test

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/rotorhq/rotor/internal/atomicfile"
	"github.com/rotorhq/rotor/internal/secret"
	"github.com/rotorhq/rotor/internal/target"
	"github.com/rotorhq/rotor/internal/target/dotenv"
	"github.com/rotorhq/rotor/internal/target/targettest"
)

func TestConformance(t *testing.T) {
	t.Parallel()
	targettest.Exercise(t, targettest.Harness{
		New: func(t *testing.T) target.Target {
			return newTarget(t, t.TempDir(), "path: .env")
		},
		Seed: func(t *testing.T, tg target.Target, values map[string]secret.String) {
			var b strings.Builder
			b.WriteString("# unmanaged keys\n")
			for k, v := range values {
				fmt.Fprintf(&b, "%s='%s' # keep\n", k, v.Reveal())
			}
			require.NoError(t, os.WriteFile(tg.Info().Destination, []byte(b.String()), 0o600))
		},
		// No quoting carries ' and " together; the suite's values hold no
		// other combination that dotenv refuses (TestNodeDotenvReadsBack
		// checks the full rules).
		Rejects: func(_, v string) bool {
			return strings.Contains(v, "'") && strings.Contains(v, `"`)
		},
		// A directory where the file was makes every read fail, even for
		// root, whom permissions do not stop.
		Break: func(t *testing.T, tg target.Target) {
			p := tg.Info().Destination
			require.NoError(t, os.Remove(p))
			require.NoError(t, os.Mkdir(p, 0o700))
		},
	})
}

func TestNew(t *testing.T) {
	t.Parallel()
	base := t.TempDir()

	tests := []struct {
		name     string
		opts     string
		baseDir  string
		wantDest string
		wantErr  string
	}{
		{name: "relative path resolved against the config directory", opts: "path: .env", baseDir: base, wantDest: filepath.Join(base, ".env")},
		{name: "nested relative path cleaned", opts: "path: ./app/../app/.env", baseDir: base, wantDest: filepath.Join(base, "app", ".env")},
		{name: "absolute path kept", opts: "path: /srv/app/.env", baseDir: base, wantDest: "/srv/app/.env"},
		{name: "all options", opts: "{path: .env, create: false, quote: double}", baseDir: base, wantDest: filepath.Join(base, ".env")},
		{name: "no path", opts: "create: true", baseDir: base, wantErr: `dotenv target "app-env" has no path; add path: .env`},
		{name: "unknown quote", opts: "{path: .env, quote: backtick}", baseDir: base, wantErr: `quote "backtick" is not one of auto, single, double`},
		{name: "relative path without a config directory", opts: "path: .env", wantErr: "path .env is relative but there is no config directory"},
		{name: "unknown option", opts: "{path: .env, owner: root}", baseDir: base, wantErr: "field owner not found"},
		{name: "mode", opts: `{path: .env, mode: "0600"}`, baseDir: base, wantDest: filepath.Join(base, ".env")},
		{name: "mode unquoted, without the 0 and with 0o", opts: "{path: .env, mode: 0640}", baseDir: base, wantDest: filepath.Join(base, ".env")},
		{name: "mode not octal", opts: "{path: .env, mode: 384}", baseDir: base, wantErr: `mode "384" is not an octal file mode; write it like "0600"`},
		{name: "mode with more than permission bits", opts: `{path: .env, mode: "4600"}`, baseDir: base, wantErr: `mode "4600" is not an octal file mode`},
		{name: "mode the owner cannot read back", opts: `{path: .env, mode: "0200"}`, baseDir: base, wantErr: `mode "0200" does not let the file's owner read and write it`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tg, err := dotenv.New(target.Params{Name: "app-env", BaseDir: tt.baseDir, Decode: targettest.DecodeYAML(tt.opts)})
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				require.Nil(t, tg)
				return
			}
			require.NoError(t, err)
			require.Equal(t, target.Info{Type: "dotenv", Name: "app-env", Destination: tt.wantDest, Idempotent: true}, tg.Info())
		})
	}

	t.Run("no decoder", func(t *testing.T) {
		t.Parallel()
		_, err := dotenv.New(target.Params{Name: "app-env", BaseDir: base})
		require.ErrorIs(t, err, target.ErrInvalid)
	})
}

func TestPut(t *testing.T) {
	t.Parallel()

	const url = "postgres://app:pw%40x@host/db"
	tests := []struct {
		name string
		opts string
		// setup prepares dir and returns the file to check afterwards.
		setup       func(t *testing.T, dir string) string
		value       string
		wantChanged bool
		wantMode    fs.FileMode
		wantContent string
		wantErrIs   error
		wantErr     string
	}{
		{
			name:        "missing file is created 0600",
			opts:        "path: .env",
			setup:       func(t *testing.T, dir string) string { return filepath.Join(dir, ".env") },
			value:       url,
			wantChanged: true,
			wantMode:    0o600,
			wantContent: "DATABASE_URL='" + url + "'\n",
		},
		{
			name:      "missing file with create: false",
			opts:      "{path: .env, create: false}",
			setup:     func(t *testing.T, dir string) string { return filepath.Join(dir, ".env") },
			value:     url,
			wantErrIs: target.ErrNotFound,
			wantErr:   "does not exist and create is false; create the file or set create: true",
		},
		{
			name: "existing file keeps its mode and other lines",
			opts: "{path: .env, create: false}",
			setup: func(t *testing.T, dir string) string {
				return writeFile(t, dir, ".env", "# keep\nA=1\nDATABASE_URL=old\n", 0o640)
			},
			value:       url,
			wantChanged: true,
			wantMode:    0o640,
			wantContent: "# keep\nA=1\nDATABASE_URL='" + url + "'\n",
		},
		{
			name: "same value already written: nothing written",
			opts: "path: .env",
			setup: func(t *testing.T, dir string) string {
				return writeFile(t, dir, ".env", "# c\nDATABASE_URL='"+url+"'\n", 0o644)
			},
			value:       url,
			wantChanged: false,
			wantMode:    0o644,
			wantContent: "# c\nDATABASE_URL='" + url + "'\n",
		},
		{
			name: "same value quoted differently: rewritten once",
			opts: "path: .env",
			setup: func(t *testing.T, dir string) string {
				return writeFile(t, dir, ".env", "DATABASE_URL=\""+url+"\"\n", 0o644)
			},
			value:       url,
			wantChanged: true,
			wantMode:    0o644,
			wantContent: "DATABASE_URL='" + url + "'\n",
		},
		{
			name: "symbolic link written through",
			opts: "path: .env",
			setup: func(t *testing.T, dir string) string {
				real := writeFile(t, dir, "shared.env", "A=1\n", 0o640)
				require.NoError(t, os.Symlink("shared.env", filepath.Join(dir, ".env")))
				return real
			},
			value:       url,
			wantChanged: true,
			wantMode:    0o640,
			wantContent: "A=1\nDATABASE_URL='" + url + "'\n",
		},
		{
			name:        "quote: double",
			opts:        "{path: .env, quote: double}",
			setup:       func(t *testing.T, dir string) string { return filepath.Join(dir, ".env") },
			value:       url,
			wantChanged: true,
			wantMode:    0o600,
			wantContent: "DATABASE_URL=\"" + url + "\"\n",
		},
		{
			name: "unrepresentable value leaves the file alone",
			opts: "path: .env",
			setup: func(t *testing.T, dir string) string {
				return writeFile(t, dir, ".env", "DATABASE_URL=old\n", 0o600)
			},
			value:       `canary'"`,
			wantContent: "DATABASE_URL=old\n",
			wantErrIs:   dotenv.ErrUnrepresentable,
			wantErr:     `dotenv target "app-env": cannot update `,
		},
		{
			name: "broken file is not guessed at",
			opts: "path: .env",
			setup: func(t *testing.T, dir string) string {
				return writeFile(t, dir, ".env", "A=1\nB='canary\n", 0o600)
			},
			value:       url,
			wantContent: "A=1\nB='canary\n",
			wantErrIs:   dotenv.ErrSyntax,
			wantErr:     "line 2: the single-quoted value is never closed",
		},
		{
			name:      "missing directory",
			opts:      "path: nope/.env",
			setup:     func(t *testing.T, dir string) string { return filepath.Join(dir, "nope", ".env") },
			value:     url,
			wantErrIs: fs.ErrNotExist,
			wantErr:   "does not exist; create it or point the target elsewhere",
		},
		{
			name: "mode tightens a world-readable file",
			opts: `{path: .env, mode: "0600"}`,
			setup: func(t *testing.T, dir string) string {
				return writeFile(t, dir, ".env", "A=1\nDATABASE_URL=old\n", 0o644)
			},
			value:       url,
			wantChanged: true,
			wantMode:    0o600,
			wantContent: "A=1\nDATABASE_URL='" + url + "'\n",
		},
		{
			name: "mode applies when the value is already there",
			opts: `{path: .env, mode: "0600"}`,
			setup: func(t *testing.T, dir string) string {
				return writeFile(t, dir, ".env", "DATABASE_URL='"+url+"'\n", 0o664)
			},
			value:       url,
			wantChanged: false,
			wantMode:    0o600,
			wantContent: "DATABASE_URL='" + url + "'\n",
		},
		{
			name: "mode through a symbolic link",
			opts: `{path: .env, mode: "0600"}`,
			setup: func(t *testing.T, dir string) string {
				real := writeFile(t, dir, "shared.env", "A=1\n", 0o644)
				require.NoError(t, os.Symlink("shared.env", filepath.Join(dir, ".env")))
				return real
			},
			value:       url,
			wantChanged: true,
			wantMode:    0o600,
			wantContent: "A=1\nDATABASE_URL='" + url + "'\n",
		},
		{
			name:        "mode for a new file",
			opts:        `{path: .env, mode: "0640"}`,
			setup:       func(t *testing.T, dir string) string { return filepath.Join(dir, ".env") },
			value:       url,
			wantChanged: true,
			wantMode:    0o640,
			wantContent: "DATABASE_URL='" + url + "'\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			check := tt.setup(t, dir)
			tg := newTarget(t, dir, tt.opts)

			resp, err := tg.Put(t.Context(), target.PutRequest{
				Values: map[string]secret.String{"DATABASE_URL": secret.New(tt.value)},
				Keys:   []string{"DATABASE_URL"},
			})
			if tt.wantErrIs != nil {
				require.ErrorIs(t, err, tt.wantErrIs)
				require.ErrorContains(t, err, tt.wantErr)
				require.NotContains(t, err.Error(), "canary")
				require.False(t, resp.Changed)
			} else {
				require.NoError(t, err)
				require.Equal(t, tt.wantChanged, resp.Changed)
				fi, err := os.Stat(check)
				require.NoError(t, err)
				require.Equal(t, tt.wantMode, fi.Mode().Perm())
			}
			if tt.wantContent != "" {
				got, err := os.ReadFile(check)
				require.NoError(t, err)
				requireSameFile(t, []byte(tt.wantContent), got)
			} else {
				_, err := os.Stat(check)
				require.ErrorIs(t, err, fs.ErrNotExist, "nothing may be created")
			}
			if err == nil {
				again, err := tg.Put(t.Context(), target.PutRequest{
					Values: map[string]secret.String{"DATABASE_URL": secret.New(tt.value)},
					Keys:   []string{"DATABASE_URL"},
				})
				require.NoError(t, err)
				require.False(t, again.Changed, "a repeated Put must not write")
			}
		})
	}
}

// TestPutSharedFile: two targets (two credentials) on one file, written at
// once, must both land; without the per-file lock one Put's
// read-edit-write could undo the other's.
func TestPutSharedFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for round := range 20 {
		keys := []string{fmt.Sprintf("A_%d", round), fmt.Sprintf("B_%d", round)}
		var wg sync.WaitGroup
		errs := make([]error, len(keys))
		for i, k := range keys {
			tg := newTarget(t, dir, "path: .env")
			wg.Go(func() {
				_, errs[i] = tg.Put(t.Context(), target.PutRequest{
					Values: map[string]secret.String{k: secret.New("v")},
					Keys:   []string{k},
				})
			})
		}
		wg.Wait()
		for _, err := range errs {
			require.NoError(t, err)
		}
	}
	content, err := os.ReadFile(filepath.Join(dir, ".env"))
	require.NoError(t, err)
	parsed, err := dotenv.Parse(content)
	require.NoError(t, err)
	require.Len(t, parsed, 40, "every key written by either target must be in the file")
}

func TestCheck(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name      string
		content   *string
		keys      []string
		want      map[string]string
		wantNotes []string
		wantErr   string
	}{
		{
			name:      "missing file holds no keys",
			keys:      []string{"DATABASE_URL"},
			want:      map[string]string{},
			wantNotes: []string{"does not exist"},
		},
		{
			name:    "requested keys only, absent ones left out",
			content: ptr("A=1\nDATABASE_URL='x'\nDATABASE_URL='y'\n"),
			keys:    []string{"DATABASE_URL", "MISSING"},
			want:    map[string]string{"DATABASE_URL": "y"},
		},
		{
			name:    "unparsable file",
			content: ptr("A=\"canary\n"),
			keys:    []string{"A"},
			wantErr: "cannot read back",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			if tt.content != nil {
				writeFile(t, dir, ".env", *tt.content, 0o600)
			}
			tg := newTarget(t, dir, "path: .env").(target.Checker)

			resp, err := tg.Check(t.Context(), target.CheckRequest{Keys: tt.keys})
			if tt.wantErr != "" {
				require.ErrorIs(t, err, dotenv.ErrSyntax)
				require.ErrorContains(t, err, tt.wantErr)
				require.NotContains(t, err.Error(), "canary")
				return
			}
			require.NoError(t, err)
			require.Len(t, resp.Values, len(tt.want))
			for k, v := range tt.want {
				require.True(t, secret.New(v).Equal(resp.Values[k]), "%s differs", k)
			}
			require.Len(t, resp.Notes, len(tt.wantNotes))
			for i, n := range tt.wantNotes {
				require.Contains(t, resp.Notes[i], n)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name      string
		opts      string
		setup     func(t *testing.T, dir string)
		wantNotes int
		// wantNote is in the notes when set, with paths relative to the
		// test's directory.
		wantNote  string
		wantErrIs error
		wantErr   string
	}{
		{
			name:  "existing valid file",
			opts:  "path: .env",
			setup: func(t *testing.T, dir string) { writeFile(t, dir, ".env", "A=1\n", 0o600) },
		},
		{
			name:      "missing file that Put will create",
			opts:      "path: .env",
			setup:     func(t *testing.T, dir string) {},
			wantNotes: 1,
		},
		{
			name:      "missing file with create: false",
			opts:      "{path: .env, create: false}",
			setup:     func(t *testing.T, dir string) {},
			wantErrIs: target.ErrNotFound,
			wantErr:   "create the file or set create: true",
		},
		{
			name:      "missing directory",
			opts:      "path: nope/.env",
			setup:     func(t *testing.T, dir string) {},
			wantErrIs: fs.ErrNotExist,
			wantErr:   "does not exist; create it or point the target elsewhere",
		},
		{
			name:      "path is a directory",
			opts:      "path: .env",
			setup:     func(t *testing.T, dir string) { require.NoError(t, os.Mkdir(filepath.Join(dir, ".env"), 0o700)) },
			wantErrIs: atomicfile.ErrNotRegular,
			wantErr:   "is not a regular file",
		},
		{
			name:      "world-readable file warns",
			opts:      "path: .env",
			setup:     func(t *testing.T, dir string) { writeFile(t, dir, ".env", "A=1\n", 0o644) },
			wantNotes: 1,
			wantNote: "warning: .env has mode 0644, so users other than its owner can get at the password it will hold;" +
				" rotor keeps an existing file's mode: run chmod 600 .env, or set mode: \"0600\" on this target to have rotor tighten it",
		},
		{
			name:      "group-readable file warns",
			opts:      "path: .env",
			setup:     func(t *testing.T, dir string) { writeFile(t, dir, ".env", "A=1\n", 0o640) },
			wantNotes: 1,
			wantNote:  "warning: .env has mode 0640",
		},
		{
			name:      "mode option: says what the next write does",
			opts:      `{path: .env, mode: "0600"}`,
			setup:     func(t *testing.T, dir string) { writeFile(t, dir, ".env", "A=1\n", 0o644) },
			wantNotes: 1,
			wantNote:  ".env has mode 0644; rotor will set it to 0600 (the mode option) at the next write",
		},
		{
			name:  "mode option already in effect",
			opts:  `{path: .env, mode: "0640"}`,
			setup: func(t *testing.T, dir string) { writeFile(t, dir, ".env", "A=1\n", 0o640) },
		},
		{
			name:      "missing file with the mode option",
			opts:      `{path: .env, mode: "0640"}`,
			setup:     func(t *testing.T, dir string) {},
			wantNotes: 1,
			wantNote:  ".env does not exist yet; it will be created with mode 0640",
		},
		{
			name:      "unparsable file",
			opts:      "path: .env",
			setup:     func(t *testing.T, dir string) { writeFile(t, dir, ".env", "A=1\nB=\"canary\n", 0o600) },
			wantErrIs: dotenv.ErrSyntax,
			wantErr:   "line 2: the double-quoted value is never closed",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			tt.setup(t, dir)
			tg := newTarget(t, dir, tt.opts).(target.Validator)

			resp, err := tg.Validate(t.Context(), target.ValidateRequest{})
			if tt.wantErrIs != nil {
				require.ErrorIs(t, err, tt.wantErrIs)
				require.ErrorContains(t, err, tt.wantErr)
				require.ErrorContains(t, err, `dotenv target "app-env"`)
				require.NotContains(t, err.Error(), "canary")
				return
			}
			require.NoError(t, err)
			require.Len(t, resp.Notes, tt.wantNotes)
			if tt.wantNote != "" {
				// Notes name the file by its absolute path.
				notes := strings.ReplaceAll(strings.Join(resp.Notes, "\n"), dir+string(filepath.Separator), "")
				require.Contains(t, notes, tt.wantNote)
			}
			entries, err := os.ReadDir(dir)
			require.NoError(t, err)
			require.LessOrEqual(t, len(entries), 1, "Validate must not write")
		})
	}
}

func newTarget(t *testing.T, dir, opts string) target.Target {
	t.Helper()
	tg, err := dotenv.New(target.Params{Name: "app-env", BaseDir: dir, Decode: targettest.DecodeYAML(opts)})
	require.NoError(t, err)
	return tg
}

func writeFile(t *testing.T, dir, name, content string, mode fs.FileMode) string {
	t.Helper()
	p := filepath.Join(dir, name)
	require.NoError(t, os.WriteFile(p, []byte(content), 0o600))
	require.NoError(t, os.Chmod(p, mode))
	return p
}

func ptr(s string) *string { return &s }
