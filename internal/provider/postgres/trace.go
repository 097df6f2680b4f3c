package postgres

import (
	"context"
	"log/slog"
	"regexp"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/rotorhq/rotor/internal/secret"
)

// sqlTracer logs every statement the provider sends (rotor --debug): its
// text with every password literal replaced, how many bind parameters it
// had (never their values), how long it took and how it ended.
type sqlTracer struct {
	log   *slog.Logger
	scrub func() []secret.String
}

type traceKey struct{}

type traceStart struct {
	sql  string
	args int
	at   time.Time
}

func (t *sqlTracer) TraceQueryStart(ctx context.Context, _ *pgx.Conn, data pgx.TraceQueryStartData) context.Context {
	// One line per statement: the indentation of rotor's own SQL is noise.
	sql := strings.Join(strings.Fields(RedactSQL(data.SQL)), " ")
	return context.WithValue(ctx, traceKey{}, traceStart{sql: sql, args: len(data.Args), at: time.Now()})
}

func (t *sqlTracer) TraceQueryEnd(ctx context.Context, _ *pgx.Conn, data pgx.TraceQueryEndData) {
	s, _ := ctx.Value(traceKey{}).(traceStart)
	attrs := []any{"sql", s.sql, "args", s.args, "duration", time.Since(s.at).Round(time.Microsecond).String()}
	if data.Err != nil {
		attrs = append(attrs, "error", scrub(data.Err.Error(), t.scrub()...))
	} else {
		attrs = append(attrs, "result", data.CommandTag.String())
	}
	t.log.Debug("sql", attrs...)
}

// passwordLiteral is a string literal after PASSWORD, the one place
// rotor's SQL carries a secret (a SCRAM verifier; for Neon in SQL mode,
// the plaintext): a standard literal, which doubles a quote inside it, or
// an E literal with backslash escapes.
var passwordLiteral = regexp.MustCompile(`(?i)(\bPASSWORD\s+)(E'(?:[^'\\]|''|\\.)*'|'(?:[^']|'')*')`)

// RedactSQL is sql with every password literal replaced by '[REDACTED]'.
func RedactSQL(sql string) string {
	return passwordLiteral.ReplaceAllString(sql, "${1}'"+secret.Redacted+"'")
}

// secrets are the values a log line must never hold: the admin password
// and the ones it may log in with.
func (p *Postgres) secrets() []secret.String {
	return append([]secret.String{p.adminPassword}, p.conns.passwordsInUse()...)
}

var _ pgx.QueryTracer = (*sqlTracer)(nil)
