package cli

import (
	"encoding/json"
	"os"

	"github.com/rotorhq/rotor/internal/store"
)

func auditParams(f *Factory, cred, event string, detail map[string]any) store.AppendAuditParams {
	b, _ := json.Marshal(detail)
	host, _ := os.Hostname()
	return store.AppendAuditParams{Credential: cred, Event: event, Actor: host, Detail: string(b), Now: f.Now().UTC()}
}
