package engine

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestStepErrorNamesTheCredentialOnce: the errors a step returns start with
// the credential's name when they can also reach the caller on their own;
// under a StepError, which names it first, the name is not said again.
func TestStepErrorNamesTheCredentialOnce(t *testing.T) {
	t.Parallel()
	cause := errors.New("app: read rotations: database is locked")
	err := &StepError{Credential: "app", RotationID: 3, Step: StepPrepare, Err: cause, Hint: "run `rotor resume`"}
	require.Equal(t, "app: rotation 3 stopped at prepare: read rotations: database is locked\n  run `rotor resume`", err.Error())
	require.ErrorIs(t, err, cause)

	other := &StepError{Credential: "app", RotationID: 3, Step: StepTest, Err: errors.New("application refused: bad password")}
	require.Equal(t, "app: rotation 3 stopped at test: application refused: bad password", other.Error(), "only the name itself is dropped")
}
