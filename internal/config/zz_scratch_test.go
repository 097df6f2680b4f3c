package config

import (
	"fmt"
	"testing"
	"time"

	"github.com/rotorhq/rotor/internal/render"
	"github.com/rotorhq/rotor/internal/schedule"
	"github.com/rotorhq/rotor/internal/secret"
	pb "github.com/rotorhq/rotor/internal/provider/builtin"
	tb "github.com/rotorhq/rotor/internal/target/builtin"
)

func TestScratch(t *testing.T) {
	_, err := ParseDuration("1d12x")
	fmt.Println("dur:", err)
	env := map[string]string{"H": "db.example.com", "N": "007", "B": "yes"}
	getenv := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	reg := Registry{Provider: pb.Lookup, Target: tb.Lookup}
	src := `version: 1
credentials:
  app:
    provider:
      type: postgres
      admin_url: postgres://admin:hunter2@${H}/postgres
    connection: {url: "postgres://h/db"}
    roles: [app_blue, app_green]
    targets:
      - {name: a, type: dotenv, path: .env, values: {X: "{{.URL}}"}}
`
	_, err = Parse(t.TempDir()+"/rotor.yaml", []byte(src), getenv, reg)
	fmt.Println("partial interp:", err)
	_, err = Parse(t.TempDir()+"/rotor.yaml", []byte("credentials: {}\n"), getenv, reg)
	fmt.Println("noversion:", err)
	_, err = Parse(t.TempDir()+"/rotor.yaml", []byte("version: 2\ncredentials: {}\n"), getenv, reg)
	fmt.Println("v2:", err)

	w, _ := schedule.ParseWindow("02:00-05:00 Europe/Berlin")
	berlin, _ := time.LoadLocation("Europe/Berlin")
	for _, ts := range []time.Time{
		time.Date(2025, 3, 30, 5, 30, 0, 0, berlin), // after end on spring forward
		time.Date(2025, 10, 26, 4, 30, 0, 0, berlin),
		time.Date(2025, 3, 29, 5, 30, 0, 0, berlin),
	} {
		fmt.Println("contains", ts, w.Contains(ts))
	}
	canary := "CANARY-s3cr3t-xyz"
	for _, tx := range []string{`{{slice .Password 0 100}}`, `{{index .Password 100}}`, `{{call .Password}}`, `{{.Password.Foo}}`, `{{eq .Password 1}}`, `{{len .Password | printf "%s" | html | index}}`, `{{printf "%d" .Password | slice 0 1000}}`, `{{template "x"}}`, `{{.Password | urlquery}}`, `{{if gt (len .Password) 5}}{{slice .Password 0 50}}{{end}}`, `{{.}}`, `{{ .Password 1 }}`, `{{ lt .Password 3 }}`,`{{ index . .Password }}`, `{{ index (.Password | printf "%s") 99}}`} {
		tpl, err := render.Compile(tx)
		if err != nil {
			fmt.Println("compile", tx, "->", err)
			continue
		}
		out, err := tpl.Execute(render.Vars{Password: secret.New(canary), URL: secret.New("postgres://u:" + canary + "@h/db")})
		fmt.Println("exec", tx, "->", err, out.Reveal())
	}
}
