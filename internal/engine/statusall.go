package engine

import "context"

// StatusAll is Status for every credential of creds, in their order: the
// one place the API's credential list and the console's overview read
// many credentials, so that a faster way (bulk store reads) serves both.
// Reading several at once was measured and is slower on two cores: the
// reads are CPU-bound, not waits. The first error ends it.
func (e *Engine) StatusAll(ctx context.Context, creds []*Credential, opts StatusOptions) ([]*CredentialStatus, error) {
	out := make([]*CredentialStatus, 0, len(creds))
	for _, cr := range creds {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		st, err := e.Status(ctx, cr, opts)
		if err != nil {
			return nil, err
		}
		out = append(out, st)
	}
	return out, nil
}
