//go:build unix

package atomicfile

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestWriteFileOwner(t *testing.T) {
	t.Parallel()
	me := os.Geteuid()

	tests := []struct {
		name string
		// chownTo is the owner given to the existing file first; only root
		// can give it to someone else.
		chownTo int
		// euid is who writeFile believes it runs as.
		euid      int
		wantOwner int
		wantErr   error
	}{
		{
			name:      "root keeps another user's ownership",
			chownTo:   map[bool]int{true: 65534, false: me}[me == 0],
			euid:      0,
			wantOwner: map[bool]int{true: 65534, false: me}[me == 0],
		},
		{
			name:      "owner replaces its own file",
			chownTo:   me,
			euid:      me,
			wantOwner: me,
		},
		{
			name:      "non-root refuses to take over another user's file",
			chownTo:   me,
			euid:      me + 1,
			wantOwner: me,
			wantErr:   ErrForeignOwner,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			path := filepath.Join(dir, ".env")
			require.NoError(t, os.WriteFile(path, []byte("old\n"), 0o600))
			require.NoError(t, os.Chown(path, tt.chownTo, tt.chownTo))

			changed, err := writeFile(path, []byte("new\n"), 0o600, tt.euid)
			fi, statErr := os.Stat(path)
			require.NoError(t, statErr)
			st := fi.Sys().(*syscall.Stat_t)
			require.Equal(t, tt.wantOwner, int(st.Uid))
			got, readErr := os.ReadFile(path)
			require.NoError(t, readErr)
			if tt.wantErr != nil {
				require.ErrorIs(t, err, tt.wantErr)
				require.ErrorContains(t, err, path)
				require.ErrorContains(t, err, "run rotor as uid")
				require.False(t, changed)
				require.Equal(t, "old\n", string(got))
				return
			}
			require.NoError(t, err)
			require.True(t, changed)
			require.Equal(t, tt.chownTo, int(st.Gid))
			require.Equal(t, "new\n", string(got))
		})
	}
}
