package cli

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/rotorhq/rotor/internal/engine"
)

// TestPrintPlanQuotesMultilineTemplates: a template holding a line break
// must not break the plan's layout (one line per key).
func TestPrintPlanQuotesMultilineTemplates(t *testing.T) {
	t.Parallel()
	p := &engine.Plan{
		Credential: "app-db", Strategy: "dual", Provider: "postgres", FromRole: "app_blue", ToRole: "app_green",
		Targets: []engine.PlanTarget{{
			Name: "env", Type: "dotenv", Destination: "/srv/.env", Idempotent: true,
			Keys: []string{"CERT_AND_URL", "DATABASE_URL", "PADDED", "TABBED"},
			Values: map[string]string{
				"CERT_AND_URL": "# generated\n{{.URL}}\r\n",
				"DATABASE_URL": "{{.URL}}",
				"PADDED":       " {{.Password}}",
				"TABBED":       "a\tb",
			},
		}},
		Warnings: []string{"careful"},
	}
	var b bytes.Buffer
	printPlan(&b, p)
	require.Equal(t, "app-db (dual, postgres): app_blue → app_green\n"+
		"  target env (dotenv) → /srv/.env\n"+
		`      CERT_AND_URL = "# generated\n{{.URL}}\r\n"`+"\n"+
		"      DATABASE_URL = {{.URL}}\n"+
		`      PADDED = " {{.Password}}"`+"\n"+
		`      TABBED = "a\tb"`+"\n"+
		"  ! careful\n", b.String())
}
