package console

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/rotorhq/rotor/internal/store"
)

func TestStepLines(t *testing.T) {
	t0 := time.Date(2026, 12, 4, 6, 0, 0, 0, time.UTC)
	at := func(m int) time.Time { return t0.Add(time.Duration(m) * time.Minute) }
	steps := []*store.Step{
		{Name: "prepare", Status: store.StepStarted, At: at(0)},
		{Name: "prepare", Status: store.StepDone, At: at(1), Detail: "version 2"},
		{Name: "publish", Status: store.StepStarted, At: at(2)},
		{Name: "publish", Status: store.StepFailed, At: at(3), Detail: "env: read-only"},
		{Name: "publish", Status: store.StepStarted, At: at(4)}, // resumed
		{Name: "publish", Status: store.StepDone, At: at(5)},
		{Name: "finish", Status: store.StepStarted, At: at(6)},
	}
	running := stepLines(&store.Rotation{Status: store.StatusActive}, steps)
	require.Equal(t, []stepLine{
		{Name: "prepare", Status: store.StepDone, Started: at(0), At: at(1), Detail: "version 2", Tries: 1},
		{Name: "publish", Status: store.StepDone, Started: at(2), At: at(5), Tries: 2},
		{Name: "finish", Status: store.StepStarted, Started: at(6), At: at(6), Tries: 1},
	}, running, "a running rotation's finish is still running")

	ended := stepLines(&store.Rotation{Status: store.StatusSucceeded, FinishedAt: at(7)}, steps)
	require.Equal(t, store.StepDone, ended[2].Status, "a terminal rotation's finish is done")
	require.Equal(t, at(7), ended[2].At)

	cut := stepLines(&store.Rotation{Status: store.StatusAbandoned}, steps[:3])
	require.Equal(t, store.StepStatus("interrupted"), cut[1].Status)
}
