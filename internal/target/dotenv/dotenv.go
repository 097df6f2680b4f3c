// Package dotenv is the dotenv target: it keeps some keys of a .env file
// up to date and leaves the rest of the file alone (targets-api.md §11).
//
// Files are edited in place (see Edit), written atomically with their mode
// kept and new ones created 0600 (see atomicfile), and read back with
// godotenv. Written values read back unchanged in both Go's godotenv and
// Node's dotenv; a value that cannot is refused, not mangled.
package dotenv

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/rotorhq/rotor/internal/atomicfile"
	"github.com/rotorhq/rotor/internal/secret"
	"github.com/rotorhq/rotor/internal/target"
)

// Type is the registry name of this target.
const Type = "dotenv"

// Options are the target's own config keys.
type Options struct {
	// Path is the file to keep up to date; relative paths are resolved
	// against the config file's directory.
	Path string `yaml:"path"`
	// Create makes Put create a missing file (mode 0600). Default true.
	Create bool `yaml:"create"`
	// Quote is "auto" (default), "single" or "double"; see Quote.
	Quote string `yaml:"quote"`
	// Mode, in octal ("0600"), is the mode the file is given at every
	// write, so a file others can read can be tightened. Unset, an
	// existing file keeps its mode and a new one is created 0600.
	Mode string `yaml:"mode"`
}

// Target keeps values in one dotenv file.
type Target struct {
	name   string
	path   string
	create bool
	editor Editor
	// mode is the Mode option; 0 when unset.
	mode fs.FileMode
}

// New builds a dotenv target from its options. It does no I/O.
func New(p target.Params) (target.Target, error) {
	opts := Options{Create: true, Quote: string(QuoteAuto)}
	if err := p.DecodeOptions(Type, &opts); err != nil {
		return nil, err
	}
	if opts.Path == "" {
		return nil, fmt.Errorf("dotenv target %q has no path; add path: .env (relative to the config file): %w", p.Name, target.ErrInvalid)
	}
	q := Quote(opts.Quote)
	if !q.valid() {
		return nil, fmt.Errorf("dotenv target %q: quote %q is not one of auto, single, double; use auto unless a tool needs one kind: %w", p.Name, opts.Quote, target.ErrInvalid)
	}
	mode, err := parseMode(opts.Mode)
	if err != nil {
		return nil, fmt.Errorf("dotenv target %q: %w", p.Name, err)
	}
	path, err := p.ResolvePath(opts.Path)
	if err != nil {
		return nil, fmt.Errorf("dotenv target %q: path %w", p.Name, err)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("dotenv target %q: cannot make %s absolute; use an absolute path: %w", p.Name, path, err)
	}
	return &Target{name: p.Name, path: abs, create: opts.Create, editor: Editor{Quote: q}, mode: mode}, nil
}

// parseMode reads the Mode option: octal permission bits, with or without
// a leading 0 or 0o, that leave the owner able to read the file back.
func parseMode(s string) (fs.FileMode, error) {
	if s == "" {
		return 0, nil
	}
	n, err := strconv.ParseUint(strings.TrimPrefix(s, "0o"), 8, 32)
	if err != nil || n > 0o777 {
		return 0, fmt.Errorf("mode %q is not an octal file mode; write it like \"0600\" (quoted, so YAML keeps it as written): %w", s, target.ErrInvalid)
	}
	if n&0o600 != 0o600 {
		return 0, fmt.Errorf("mode %q does not let the file's owner read and write it, which rotor needs to update and read it back; use \"0600\": %w", s, target.ErrInvalid)
	}
	return fs.FileMode(n), nil
}

// CheckKeys implements target.KeyChecker.
func (t *Target) CheckKeys(keys []string) error { return checkKeys(keys) }

// CheckValue implements target.ValueChecker: the value must survive what
// Put does with it — quoting under the quote option and reading back with
// godotenv — in an empty file.
func (t *Target) CheckValue(key string, value secret.String) error {
	return t.editor.Check(key, value.Reveal())
}

// Info implements target.Target.

func (t *Target) Info() target.Info {
	return target.Info{Type: Type, Name: t.name, Destination: t.path, Idempotent: true}
}

// Put implements target.Target: it edits the file so each key holds its
// value and reports Changed=false when the file already did.
func (t *Target) Put(ctx context.Context, req target.PutRequest) (target.PutResponse, error) {
	if err := ctx.Err(); err != nil {
		return target.PutResponse{}, err
	}
	values := make(map[string]string, len(req.Values))
	for k, v := range req.Values {
		values[k] = v.Reveal()
	}

	// Two targets (two credentials) may share a file; without this their
	// read-edit-write cycles could interleave and one would undo the other.
	unlock := atomicfile.Lock(t.path)
	defer unlock()

	content, err := os.ReadFile(t.path)
	switch {
	case errors.Is(err, fs.ErrNotExist) && t.create:
		content = nil
	case errors.Is(err, fs.ErrNotExist):
		return target.PutResponse{}, fmt.Errorf("dotenv target %q: %s does not exist and create is false; create the file or set create: true: %w", t.name, t.path, target.ErrNotFound)
	case err != nil:
		return target.PutResponse{}, t.fileError("read", err)
	}
	out, err := t.editor.Edit(content, values, req.Keys)
	if err != nil {
		return target.PutResponse{}, fmt.Errorf("dotenv target %q: cannot update %s: %w", t.name, t.path, err)
	}
	perm := fs.FileMode(0o600)
	if t.mode != 0 {
		perm = t.mode
		// Before the write, so the new value is never readable under the
		// old mode; WriteFile then keeps the new one.
		if err := t.applyMode(); err != nil {
			return target.PutResponse{}, err
		}
	}
	changed, err := atomicfile.WriteFile(t.path, out, perm)
	if err != nil {
		return target.PutResponse{Changed: changed}, fmt.Errorf("dotenv target %q: %w", t.name, err)
	}
	return target.PutResponse{Changed: changed}, nil
}

// Check implements target.Checker. A missing file holds no keys.
func (t *Target) Check(ctx context.Context, req target.CheckRequest) (target.CheckResponse, error) {
	if err := ctx.Err(); err != nil {
		return target.CheckResponse{}, err
	}
	resp := target.CheckResponse{Values: map[string]secret.String{}}
	content, err := os.ReadFile(t.path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		resp.Notes = append(resp.Notes, t.path+" does not exist")
		return resp, nil
	case err != nil:
		return target.CheckResponse{}, t.fileError("read", err)
	}
	parsed, err := Parse(content)
	if err != nil {
		return target.CheckResponse{}, fmt.Errorf("dotenv target %q: cannot read back %s: %w", t.name, t.path, err)
	}
	for _, k := range req.Keys {
		if v, ok := parsed[k]; ok {
			resp.Values[k] = secret.New(v)
		}
	}
	return resp, nil
}

// Validate implements target.Validator: the file could be written and, if
// it exists, can be read and parsed. It writes nothing.
func (t *Target) Validate(ctx context.Context, _ target.ValidateRequest) (target.ValidateResponse, error) {
	if err := ctx.Err(); err != nil {
		return target.ValidateResponse{}, err
	}
	if err := atomicfile.CheckWritable(t.path); err != nil {
		return target.ValidateResponse{}, fmt.Errorf("dotenv target %q: %w", t.name, err)
	}
	content, err := os.ReadFile(t.path)
	switch {
	case errors.Is(err, fs.ErrNotExist) && t.create:
		return target.ValidateResponse{Notes: []string{fmt.Sprintf("%s does not exist yet; it will be created with mode %04o", t.path, t.newMode())}}, nil
	case errors.Is(err, fs.ErrNotExist):
		return target.ValidateResponse{}, fmt.Errorf("dotenv target %q: %s does not exist and create is false; create the file or set create: true: %w", t.name, t.path, target.ErrNotFound)
	case err != nil:
		return target.ValidateResponse{}, t.fileError("read", err)
	}
	if _, err := Parse(content); err != nil {
		return target.ValidateResponse{}, fmt.Errorf("dotenv target %q: %s: %w", t.name, t.path, err)
	}
	var resp target.ValidateResponse
	fi, err := os.Stat(t.path)
	if err != nil {
		return target.ValidateResponse{}, t.fileError("inspect", err)
	}
	switch perm := fi.Mode().Perm(); {
	case t.mode != 0 && perm != t.mode:
		resp.Notes = append(resp.Notes, fmt.Sprintf("%s has mode %04o; rotor will set it to %04o (the mode option) at the next write", t.path, perm, t.mode))
	case t.mode == 0 && perm&0o077 != 0:
		resp.Notes = append(resp.Notes, fmt.Sprintf("warning: %s has mode %04o, so users other than its owner can get at the password it will hold;"+
			" rotor keeps an existing file's mode: run chmod 600 %s, or set mode: \"0600\" on this target to have rotor tighten it", t.path, perm, t.path))
	}
	return resp, nil
}

// newMode is the mode a file rotor creates gets.
func (t *Target) newMode() fs.FileMode {
	if t.mode != 0 {
		return t.mode
	}
	return 0o600
}

// applyMode gives an existing file the Mode option's mode.
func (t *Target) applyMode() error {
	fi, err := os.Stat(t.path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return t.fileError("inspect", err)
	case fi.Mode().Perm() == t.mode:
		return nil
	}
	// An immutable file refuses chmod too; let the write's own check say
	// so rather than blame ownership.
	if err := atomicfile.CheckWritable(t.path); err != nil {
		return fmt.Errorf("dotenv target %q: %w", t.name, err)
	}
	if err := os.Chmod(t.path, t.mode); err != nil {
		if errors.Is(err, fs.ErrPermission) {
			return fmt.Errorf("dotenv target %q: cannot set mode %04o on %s (the mode option): only its owner or root may change it;"+
				" run rotor as its owner, or chmod it yourself and remove the mode option: %w", t.name, t.mode, t.path, err)
		}
		return fmt.Errorf("dotenv target %q: cannot set mode %04o on %s (the mode option); check the filesystem supports permissions: %w", t.name, t.mode, t.path, err)
	}
	return nil
}

func (t *Target) fileError(op string, err error) error {
	if errors.Is(err, fs.ErrPermission) {
		return fmt.Errorf("dotenv target %q: cannot %s %s: permission denied; give rotor's user access to it: %w", t.name, op, t.path, err)
	}
	return fmt.Errorf("dotenv target %q: cannot %s %s; check the path: %w", t.name, op, t.path, err)
}

var (
	_ target.Target       = (*Target)(nil)
	_ target.KeyChecker   = (*Target)(nil)
	_ target.ValueChecker = (*Target)(nil)
	_ target.Checker      = (*Target)(nil)
	_ target.Validator    = (*Target)(nil)
)
