// Package connstr parses, builds and redacts PostgreSQL connection strings.
// Redact goes further: it hides the secrets of any text (URLs of every
// scheme, password= keywords, JSON password values) and keeps every other
// byte.
//
// Two forms exist, and Parse accepts both:
//
//   - URL form, as libpq documents it:
//     postgresql://user:password@host:port,host2:port2/dbname?sslmode=require&application_name=api
//     ("postgres://" is accepted too). User, password, host, database and
//     query keys and values are percent-decoded. Hosts may be a
//     comma-separated list, an IPv6 literal in brackets ([::1]:5432), empty
//     (the libpq default, a unix socket), or given as ?host=/run/postgresql.
//     Query parameters named host, port, user, password or dbname override
//     the URL parts, as in libpq; every other parameter is kept as a Param,
//     in order, repeated keys included. A '+' in the query is a literal plus
//     (libpq), never a space.
//   - keyword/value form (a "DSN"): host=db.example.com user=app
//     password='it\'s secret' dbname=app. Values may be single-quoted, with
//     \' and \\ as escapes; unknown keywords are kept as Params. Where libpq
//     would read "user= password=x" as the user "password=x", Parse fails:
//     the password would land in a field that gets printed.
//
// Conn.URL always writes the URL form with every byte of user, password,
// database and parameters that is not an RFC 3986 unreserved character
// percent-encoded, so the result survives libpq, pgx, net/url, shells and
// .env files alike, and Parse(c.URL()) gives c back. A host that cannot sit
// in the authority (a unix socket directory, an IPv6 zone, a host list whose
// port list does not match it) travels as ?host=…&port=… instead, which
// libpq and pgx both read.
//
// Passwords are a secret.String everywhere. Parse errors never quote the
// input: when a password is mistyped (an unencoded '@', '/', '?' or '#'),
// any fragment of the input could be part of it, so errors only name the
// problem and the fix.
//
// # Neon pooled and direct hosts
//
// A Neon compute endpoint has one direct and one pooled (PgBouncer)
// hostname. The pooled one inserts "-pooler" right after the endpoint id,
// which is the first DNS label:
//
//	ep-cool-darkness-a1b2c3d4.us-east-2.aws.neon.tech         direct
//	ep-cool-darkness-a1b2c3d4-pooler.us-east-2.aws.neon.tech  pooled
//
// IsNeonHost, PooledHost and DirectHost apply this rule only to hosts under
// neon.tech whose first label starts with "ep-"; for any other host the
// pooled hostname cannot be derived and must be configured explicitly.
package connstr
