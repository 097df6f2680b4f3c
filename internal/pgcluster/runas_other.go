//go:build !unix

package pgcluster

import (
	"context"
	"os/exec"
)

// osUser is only needed where PostgreSQL refuses to run as the superuser
// account (root on unix); elsewhere the server runs as the caller.
type osUser struct{}

func serverUser(context.Context) (*osUser, error) { return nil, nil }

func (u *osUser) apply(*exec.Cmd) {}

func (u *osUser) chown(string) error { return nil }

func (u *osUser) checkReachable(string) error { return nil }
