package engine_test

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/rotorhq/rotor/internal/secret"
	"github.com/rotorhq/rotor/internal/target"
	tbuiltin "github.com/rotorhq/rotor/internal/target/builtin"
)

// memoryTarget is an in-process target for engine tests that need to
// control what a backend answers: failures, write-only keys, drift.
type memoryTarget struct {
	mu         sync.Mutex
	values     map[string]secret.String
	puts       int
	reloads    int
	failPuts   int   // fail this many Puts
	failErr    error // with this error (default a RetryableError)
	writeOnly  bool  // Check reports every key as unreadable
	dropOnRead string
	notified   []target.Notification
	// reloadTakes makes Reload wait, as a deploy does, before it returns;
	// reloadedAt is when the last one returned.
	reloadTakes time.Duration
	reloadedAt  time.Time
	// onPut, when set, runs at the start of every Put (and so of every
	// gatekeeper PublishVerifier).
	onPut func()
}

// memoryGatekeeper is a memoryTarget that consumers authenticate
// through: the engine publishes it with PublishVerifier, which counts and
// fails like Put, instead of Put.
type memoryGatekeeper struct{ *memoryTarget }

// memoryTargetYAML(true) is the YAML for a memory target; the harness wires
// the instance into the bundle.
func memoryTargetYAML(on bool) string {
	if !on {
		return ""
	}
	return `      - name: mem
        type: memory
        values:
          DATABASE_URL: "{{.URL}}"
`
}

func lookupWithMemory(b *bundle) func(string) (target.Factory, error) {
	return func(typ string) (target.Factory, error) {
		if typ != "memory" {
			return tbuiltin.Lookup(typ)
		}
		return func(p target.Params) (target.Target, error) {
			b.mem = &memoryTarget{values: map[string]secret.String{}}
			if b.memGatekeeper {
				return memoryGatekeeper{b.mem}, nil
			}
			return b.mem, nil
		}, nil
	}
}

func (m *memoryTarget) Info() target.Info {
	return target.Info{Type: "memory", Name: "mem", Destination: "memory", Idempotent: true}
}

func (m *memoryTarget) Put(ctx context.Context, req target.PutRequest) (target.PutResponse, error) {
	if m.onPut != nil {
		m.onPut()
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.puts++
	if m.failPuts > 0 {
		m.failPuts--
		if m.failErr != nil {
			return target.PutResponse{}, m.failErr
		}
		return target.PutResponse{}, &target.RetryableError{Err: errors.New("memory: 503 service unavailable")}
	}
	for k, v := range req.Values {
		m.values[k] = v
	}
	return target.PutResponse{Changed: true}, nil
}

func (m *memoryTarget) Reload(ctx context.Context, req target.ReloadRequest) (target.ReloadResponse, error) {
	m.mu.Lock()
	takes := m.reloadTakes
	m.mu.Unlock()
	select {
	case <-time.After(takes):
	case <-ctx.Done():
		return target.ReloadResponse{}, ctx.Err()
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.reloads++
	m.reloadedAt = time.Now()
	return target.ReloadResponse{Detail: "reloaded"}, nil
}

func (m *memoryTarget) Check(ctx context.Context, req target.CheckRequest) (target.CheckResponse, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	resp := target.CheckResponse{Values: map[string]secret.String{}}
	for _, k := range req.Keys {
		if m.writeOnly {
			resp.Unreadable = append(resp.Unreadable, k)
			continue
		}
		if v, ok := m.values[k]; ok && k != m.dropOnRead {
			resp.Values[k] = v
		}
	}
	return resp, nil
}

func (m *memoryTarget) Notify(ctx context.Context, n target.Notification) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.notified = append(m.notified, n)
	return nil
}

func (g memoryGatekeeper) Put(ctx context.Context, req target.PutRequest) (target.PutResponse, error) {
	return target.PutResponse{}, errors.New("memory gatekeeper: the engine must publish a gatekeeper with PublishVerifier")
}

func (g memoryGatekeeper) PublishVerifier(ctx context.Context, req target.PublishVerifierRequest) (target.PublishVerifierResponse, error) {
	if req.Verifier.IsZero() {
		return target.PublishVerifierResponse{}, errors.New("memory gatekeeper: no verifier")
	}
	resp, err := g.memoryTarget.Put(ctx, target.PutRequest{Values: req.Values, Keys: req.Keys, Role: req.Role})
	return target.PublishVerifierResponse{Changed: resp.Changed}, err
}

func (g memoryGatekeeper) RestoreVerifier(ctx context.Context, req target.RestoreVerifierRequest) (target.RestoreVerifierResponse, error) {
	return target.RestoreVerifierResponse{}, nil
}

func (g memoryGatekeeper) Settle(ctx context.Context, req target.SettleRequest) (target.SettleResponse, error) {
	return target.SettleResponse{}, nil
}

func (g memoryGatekeeper) ListClients(ctx context.Context, req target.ListClientsRequest) (target.ListClientsResponse, error) {
	return target.ListClientsResponse{}, nil
}

func (m *memoryTarget) get(k string) secret.String {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.values[k]
}

var (
	_ target.Target   = (*memoryTarget)(nil)
	_ target.Reloader = (*memoryTarget)(nil)
	_ target.Checker  = (*memoryTarget)(nil)
	_ target.Notifier = (*memoryTarget)(nil)

	_ target.Gatekeeper = memoryGatekeeper{}
)
