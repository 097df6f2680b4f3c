//go:build !unix

package osuser

import (
	"context"
	"os/exec"
)

// User is only needed where the servers refuse to run as the superuser
// account (root on unix); elsewhere they run as the caller.
type User struct{}

// ForServer returns nil: the current user runs the server.
func ForServer(context.Context, string) (*User, error) { return nil, nil }

// Apply does nothing here.
func (u *User) Apply(*exec.Cmd) {}

// Chown does nothing here.
func (u *User) Chown(string) error { return nil }

// CheckReachable does nothing here.
func (u *User) CheckReachable(string) error { return nil }
