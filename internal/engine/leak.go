package engine

import (
	"context"
	"crypto/subtle"
	"fmt"
	"strings"

	"github.com/rotorhq/rotor/internal/connstr"
	"github.com/rotorhq/rotor/internal/secret"
	"github.com/rotorhq/rotor/internal/store"
)

// LeakMatch is the version a leaked secret belongs to, secret-free.
type LeakMatch struct {
	Credential string      `json:"credential"`
	Role       string      `json:"role"`
	Version    int64       `json:"version"`
	Stage      store.Stage `json:"stage"`
}

// leakCandidates are the passwords a leaked text may carry: the text
// itself (a bare password), and the password of a connection string.
func leakCandidates(leaked secret.String) []string {
	text := strings.TrimSpace(leaked.Reveal())
	if text == "" {
		return nil
	}
	out := []string{text}
	if c, err := connstr.Parse(text); err == nil && !c.Password.IsZero() {
		out = append(out, c.Password.Reveal())
	}
	return out
}

// MatchLeak finds the credential whose current or previous version has
// the leaked password (given bare or inside a connection string). The
// store keeps only keyed fingerprints of passwords, so the leak is
// fingerprinted the same way, per credential, and compared in constant
// time; nothing is decrypted. nil, nil when nothing matches.
func (e *Engine) MatchLeak(ctx context.Context, creds []*Credential, leaked secret.String) (*LeakMatch, error) {
	e.init()
	cands := leakCandidates(leaked)
	if len(cands) == 0 {
		return nil, nil
	}
	for _, cr := range creds {
		vs, err := e.Store.ListVersions(ctx, store.ListVersionsParams{Credential: cr.Name, Stages: []store.Stage{store.StageCurrent, store.StagePrevious}})
		if err != nil {
			return nil, fmt.Errorf("%s: read versions: %w", cr.Name, err)
		}
		for _, c := range cands {
			fp := e.Sealer.Fingerprint("password", cr.Name, c)
			for _, v := range vs {
				if subtle.ConstantTimeCompare([]byte(fp), []byte(v.Fingerprint)) == 1 {
					return &LeakMatch{Credential: cr.Name, Role: v.Role, Version: v.Seq, Stage: v.Stage}, nil
				}
			}
		}
	}
	return nil, nil
}
