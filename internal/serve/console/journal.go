package console

import (
	"time"

	"github.com/rotorhq/rotor/internal/engine"
	"github.com/rotorhq/rotor/internal/store"
)

// stepLine is one step of a rotation as the journal partial shows it: its
// last status, when it started and when it last changed.
type stepLine struct {
	Name    string
	Status  store.StepStatus
	Started time.Time
	At      time.Time
	Detail  string
	// Tries counts the step's starts; more than one: a resume ran it again.
	Tries int
}

// stepLines folds the journal (a started and a done or failed row per
// run of a step, appended) into one line per step, in the order the steps
// first ran.
//
// The engine never journals finish as done: finishing is what makes the
// rotation terminal, so its status is the proof. A terminal rotation's
// finish therefore shows done at the rotation's end, instead of a
// trailing "finish started" that reads as if it were still running. Any
// other step left started in a terminal rotation was cut off (an
// abandoned rotation) and says so.
func stepLines(rot *store.Rotation, steps []*store.Step) []stepLine {
	var out []stepLine
	at := map[string]int{}
	for _, s := range steps {
		i, ok := at[s.Name]
		if !ok {
			i = len(out)
			at[s.Name] = i
			out = append(out, stepLine{Name: s.Name, Started: s.At})
		}
		l := &out[i]
		l.Status, l.At = s.Status, s.At
		// A run's detail is its outcome's: a resumed step that succeeded
		// no longer shows the error of the run before.
		l.Detail = s.Detail
		if s.Status == store.StepStarted {
			l.Tries++
		}
	}
	if !rot.Status.Terminal() {
		return out
	}
	for i := range out {
		l := &out[i]
		if l.Status != store.StepStarted {
			continue
		}
		if l.Name == engine.StepFinish {
			l.Status = store.StepDone
			if !rot.FinishedAt.IsZero() {
				l.At = rot.FinishedAt
			}
			continue
		}
		l.Status = "interrupted"
	}
	return out
}
