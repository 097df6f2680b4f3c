package serve

import "context"

// Tick runs one scheduler tick now, as the leader would (tests and
// benchmarks).
func (s *Service) Tick(ctx context.Context) error { return (&scheduler{s: s}).Work(ctx, nil) }
