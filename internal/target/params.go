package target

import (
	"fmt"
	"net/http"
	"path/filepath"
	"time"
)

// Describe is how a target names itself in its errors: `vercel target "prod"`.
func (p Params) Describe(typ string) string {
	return fmt.Sprintf("%s target %q", typ, p.Name)
}

// DecodeOptions strictly decodes the target's options into opts, which
// holds the defaults on entry. Errors start with Describe(typ).
func (p Params) DecodeOptions(typ string, opts any) error {
	if p.Decode == nil {
		return fmt.Errorf("%s: no options decoder; this is a bug in the caller: %w", p.Describe(typ), ErrInvalid)
	}
	if err := p.Decode(opts); err != nil {
		return fmt.Errorf("%s: %w", p.Describe(typ), err)
	}
	return nil
}

// ResolvePath resolves a path from the target's options against the config
// file's directory. The error reads after the option's name, as in
// `dotenv target "app": path <err>`.
func (p Params) ResolvePath(path string) (string, error) {
	if filepath.IsAbs(path) {
		return path, nil
	}
	if p.BaseDir == "" {
		return "", fmt.Errorf("%s is relative but there is no config directory to resolve it against; use an absolute path: %w", path, ErrInvalid)
	}
	return filepath.Join(p.BaseDir, path), nil
}

// HTTP is the client for the target's calls: the injected one, else
// http.DefaultClient.
func (p Params) HTTP() *http.Client {
	if p.HTTPClient != nil {
		return p.HTTPClient
	}
	return http.DefaultClient
}

// Clock is the target's clock: the injected one, else time.Now.
func (p Params) Clock() func() time.Time {
	if p.Now != nil {
		return p.Now
	}
	return time.Now
}

// Env looks up environment variables: the injected lookup, else one that
// finds nothing, so a target reads the process environment only when the
// caller hands it over.
func (p Params) Env() func(string) string {
	if p.Getenv != nil {
		return p.Getenv
	}
	return func(string) string { return "" }
}
