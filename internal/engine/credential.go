package engine

import (
	"fmt"
	"time"

	"github.com/rotorhq/rotor/internal/connstr"
	"github.com/rotorhq/rotor/internal/provider"
	"github.com/rotorhq/rotor/internal/schedule"
	"github.com/rotorhq/rotor/internal/secret"
	"github.com/rotorhq/rotor/internal/target"
	"github.com/rotorhq/rotor/internal/template"
)

// Strategy names (DESIGN.md "Strategies").
const (
	StrategySingle = "single"
	StrategyDual   = "dual"
)

// Retire policies for the old role of a dual rotation.
const (
	RetireImmediately  = "immediately"
	RetireNextRotation = "next-rotation"
)

// Credential is one managed connection string as the engine works on it:
// its settings and its live provider and targets. The engine never builds
// or closes a provider or a target: whoever built them (internal/resolve,
// from the config) owns them and may share one provider between
// credentials.
type Credential struct {
	Name string
	// Line is where the credential is written in its config, if it has one.
	Line int
	// ProviderType names the provider's type, for plans and checks.
	ProviderType string
	Provider     provider.Provider
	// Conn is how consumers connect (user and password are filled per
	// version); Pooled is the pooled variant, nil when there is none. A nil
	// Conn means the provider discovers the endpoints (provider.Endpointer).
	Conn        *connstr.Conn
	Pooled      *connstr.Conn
	Strategy    string
	Roles       []string
	Group       string
	Policy      secret.Policy
	ExpireAfter time.Duration
	Schedule    *schedule.Schedule
	// DrainTimeout is the deadline, from the switch, for the old role to
	// fall quiet; DrainPoll how often its sessions are sampled; DrainGrace
	// how long after the last reload finished it stays valid at least;
	// DrainQuiet the continuous time it must show no session; DrainWait how
	// long Rotate waits for that evidence before it defers the retirement.
	DrainTimeout time.Duration
	DrainPoll    time.Duration
	DrainGrace   time.Duration
	DrainQuiet   time.Duration
	DrainWait    time.Duration
	// DrainTerminate ends the old role's remaining sessions at the deadline
	// instead of leaving the old role in use.
	DrainTerminate bool
	Retire         string
	RetireMethod   provider.RetireMethod
	TestTimeout    time.Duration
	TestPooled     bool
	Concurrency    int
	Attempts       int
	MaxBackoff     time.Duration
	TargetTimeout  time.Duration
	Targets        []*Target
}

// Target is one target of a credential: where the values go (Impl) and
// how they are rendered (Values, in the order of Keys).
type Target struct {
	Name string
	Type string
	Line int
	// Keys are the value names in file order, Values[i] Keys[i]'s template.
	Keys   []string
	Values []*template.Template
	// ReloadTimeout bounds the reload (a redeploy that must finish);
	// zero means the publish timeout.
	ReloadTimeout time.Duration
	Impl          target.Target
}

// formatDuration prints whole days as "Nd", as durations are written in
// rotor.yaml, and everything else as Go does.
func formatDuration(d time.Duration) string {
	if d > 0 && d%(24*time.Hour) == 0 {
		return fmt.Sprintf("%dd", d/(24*time.Hour))
	}
	return d.String()
}
