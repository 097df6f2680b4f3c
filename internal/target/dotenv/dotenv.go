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
}

// Target keeps values in one dotenv file.
type Target struct {
	name   string
	path   string
	create bool
	editor Editor
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
	path, err := p.ResolvePath(opts.Path)
	if err != nil {
		return nil, fmt.Errorf("dotenv target %q: path %w", p.Name, err)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("dotenv target %q: cannot make %s absolute; use an absolute path: %w", p.Name, path, err)
	}
	return &Target{name: p.Name, path: abs, create: opts.Create, editor: Editor{Quote: q}}, nil
}

// Info implements target.Target.
// CheckKeys implements target.KeyChecker.
func (t *Target) CheckKeys(keys []string) error { return checkKeys(keys) }

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
	changed, err := atomicfile.WriteFile(t.path, out, 0o600)
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
		return target.ValidateResponse{Notes: []string{t.path + " does not exist yet; it will be created with mode 0600"}}, nil
	case errors.Is(err, fs.ErrNotExist):
		return target.ValidateResponse{}, fmt.Errorf("dotenv target %q: %s does not exist and create is false; create the file or set create: true: %w", t.name, t.path, target.ErrNotFound)
	case err != nil:
		return target.ValidateResponse{}, t.fileError("read", err)
	}
	if _, err := Parse(content); err != nil {
		return target.ValidateResponse{}, fmt.Errorf("dotenv target %q: %s: %w", t.name, t.path, err)
	}
	return target.ValidateResponse{}, nil
}

func (t *Target) fileError(op string, err error) error {
	if errors.Is(err, fs.ErrPermission) {
		return fmt.Errorf("dotenv target %q: cannot %s %s: permission denied; give rotor's user access to it: %w", t.name, op, t.path, err)
	}
	return fmt.Errorf("dotenv target %q: cannot %s %s; check the path: %w", t.name, op, t.path, err)
}

var (
	_ target.Target     = (*Target)(nil)
	_ target.KeyChecker = (*Target)(nil)
	_ target.Checker    = (*Target)(nil)
	_ target.Validator  = (*Target)(nil)
)
