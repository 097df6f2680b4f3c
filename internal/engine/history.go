package engine

import (
	"encoding/json"
	"strings"
	"time"

	"github.com/rotorhq/rotor/internal/store"
)

// HistoryEvent is one audit event as `rotor history --json` prints it and
// the serve API's /history returns it.
type HistoryEvent struct {
	ID         int64  `json:"id"`
	At         string `json:"at"`
	Credential string `json:"credential"`
	RotationID int64  `json:"rotation_id,omitempty"`
	Event      string `json:"event"`
	// Result is what the event counts as (EventResult).
	Result string `json:"result"`
	Actor  string `json:"actor"`
	// Detail is the event's detail as an object (secret-free).
	Detail json.RawMessage `json:"detail"`
}

// HistoryEventOf is ev as history shows it.
func HistoryEventOf(ev *store.AuditEvent) HistoryEvent {
	return HistoryEvent{ID: ev.ID, At: ev.At.UTC().Format(time.RFC3339Nano), Credential: ev.Credential, RotationID: ev.RotationID,
		Event: ev.Event, Result: EventResult(ev.Event), Actor: ev.Actor, Detail: detailObject(ev.Detail)}
}

// detailObject is an event's detail as JSON to nest: the object it holds,
// or, for a detail that is not an object, an object holding it as text.
func detailObject(detail string) json.RawMessage {
	d := strings.TrimSpace(detail)
	var obj map[string]json.RawMessage
	if d == "" {
		return json.RawMessage("{}")
	}
	if err := json.Unmarshal([]byte(d), &obj); err == nil && obj != nil {
		return json.RawMessage(d)
	}
	b, _ := json.Marshal(map[string]string{"text": d})
	return b
}
