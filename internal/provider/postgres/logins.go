package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/rotorhq/rotor/internal/provider"
)

// The login record (provider.LoginRecorder) on PostgreSQL 17 and later: a
// login event trigger writes the time of each login of a role rotor
// manages into a table of its own schema. It is the exact evidence for
// consumers that connect per request, which sampling pg_stat_activity
// misses between two samples.
//
// What the trigger does at every login to the database, and why:
//   - only roles listed in the table are recorded (rotor's login roles), so
//     every other login costs one index probe and no write;
//   - nothing on a standby (pg_is_in_recovery), which cannot write;
//   - lock_timeout 50ms, and any error swallowed: a login is never refused
//     or held up for long because its record could not be written (PL/pgSQL
//     catches it in a subtransaction); a login that loses the race to a
//     concurrent login of the same role is recorded by that one, a few
//     milliseconds apart;
//   - SECURITY DEFINER with a fixed search_path, so the logging-in role
//     needs no privilege on the schema and cannot redirect the function.
//
// CREATE EVENT TRIGGER needs a superuser; event triggers belong to one
// database, so logins to other databases are not recorded (sessions there
// are still sampled).

const (
	loginSchema  = "rotor_login"
	loginTrigger = "rotor_record_login"
)

var loginSetupSQL = []string{
	`CREATE SCHEMA IF NOT EXISTS ` + loginSchema,
	`REVOKE ALL ON SCHEMA ` + loginSchema + ` FROM PUBLIC`,
	`CREATE TABLE IF NOT EXISTS ` + loginSchema + `.last_login (
		role name PRIMARY KEY,
		at timestamptz
	)`,
	`CREATE OR REPLACE FUNCTION ` + loginSchema + `.record() RETURNS event_trigger
	LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
	BEGIN
		IF pg_is_in_recovery() THEN
			RETURN;
		END IF;
		PERFORM set_config('lock_timeout', '50ms', true);
		UPDATE ` + loginSchema + `.last_login SET at = now()
		WHERE role = session_user AND (at IS NULL OR at < now());
	EXCEPTION WHEN OTHERS THEN
		RETURN;
	END
	$fn$`,
	`REVOKE ALL ON FUNCTION ` + loginSchema + `.record() FROM PUBLIC`,
}

// RecordLogins implements provider.LoginRecorder.
func (p *Postgres) RecordLogins(ctx context.Context, req provider.RecordLoginsRequest) (provider.RecordLoginsResponse, error) {
	op := fmt.Sprintf("record the logins of %s", quotedList(req.Roles))
	for _, r := range req.Roles {
		if err := checkRoleName(op, r); err != nil {
			return provider.RecordLoginsResponse{}, err
		}
	}
	var resp provider.RecordLoginsResponse
	err := p.conns.with(ctx, func(conn *pgx.Conn) error {
		resp = provider.RecordLoginsResponse{}
		var (
			version int
			super   bool
			db      string
		)
		if err := conn.QueryRow(ctx, `SELECT current_setting('server_version_num')::int, rolsuper, current_database()
			FROM pg_roles WHERE rolname = current_user`).Scan(&version, &super, &db); err != nil {
			return err
		}
		switch {
		case version < 170000:
			resp.Reason = fmt.Sprintf("PostgreSQL %d.%d has no login event triggers (17 and later do); retirement relies on sampling sessions, drain.grace and drain.quiet", version/10000, version%10000/100)
			return nil
		case !super:
			resp.Reason = "the admin role is not a superuser, which CREATE EVENT TRIGGER needs; retirement relies on sampling sessions, drain.grace and drain.quiet"
			return nil
		}
		return pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			var had bool
			if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_event_trigger WHERE evtname = $1)`, loginTrigger).Scan(&had); err != nil {
				return err
			}
			for _, q := range loginSetupSQL {
				if _, err := tx.Exec(ctx, q); err != nil {
					return err
				}
			}
			if !had {
				if _, err := tx.Exec(ctx, `CREATE EVENT TRIGGER `+loginTrigger+` ON login EXECUTE FUNCTION `+loginSchema+`.record()`); err != nil {
					return err
				}
				resp.Changes = append(resp.Changes, fmt.Sprintf("created login event trigger %s in database %q (records when %s last logged in)", loginTrigger, db, quotedList(req.Roles)))
			} else if _, err := tx.Exec(ctx, `ALTER EVENT TRIGGER `+loginTrigger+` ENABLE`); err != nil {
				return err
			}
			tag, err := tx.Exec(ctx, `INSERT INTO `+loginSchema+`.last_login (role) SELECT unnest($1::name[]) ON CONFLICT (role) DO NOTHING`, req.Roles)
			if err != nil {
				return err
			}
			if n := tag.RowsAffected(); n > 0 && had {
				resp.Changes = append(resp.Changes, fmt.Sprintf("login event trigger %s now records %d more role(s)", loginTrigger, n))
			}
			resp.Recorded = true
			resp.Where = fmt.Sprintf("login event trigger %s in database %q", loginTrigger, db)
			return nil
		})
	})
	if err != nil {
		return provider.RecordLoginsResponse{}, p.fail(op, "", err)
	}
	return resp, nil
}

// LastLogin implements provider.LoginRecorder. No table, no enabled
// trigger or no row for the role all mean not Recorded.
func (p *Postgres) LastLogin(ctx context.Context, req provider.LastLoginRequest) (provider.LastLoginResponse, error) {
	op := fmt.Sprintf("read when role %q last logged in", req.Role)
	if err := checkRoleName(op, req.Role); err != nil {
		return provider.LastLoginResponse{}, err
	}
	var resp provider.LastLoginResponse
	err := p.conns.with(ctx, func(conn *pgx.Conn) error {
		resp = provider.LastLoginResponse{}
		// Asked first, so that a server without the record does not log
		// an error at every sample.
		var kept bool
		if err := conn.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL
			AND EXISTS (SELECT 1 FROM pg_event_trigger WHERE evtname = $2 AND evtenabled <> 'D')`,
			loginSchema+".last_login", loginTrigger).Scan(&kept); err != nil || !kept {
			return err
		}
		var ago *float64
		err := conn.QueryRow(ctx, `SELECT extract(epoch FROM clock_timestamp() - at)::float8
			FROM `+loginSchema+`.last_login WHERE role = $1`, req.Role).Scan(&ago)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			return nil
		case err != nil:
			return err
		}
		resp.Recorded = true
		if ago != nil {
			resp.Seen, resp.Ago = true, max(time.Duration(*ago*float64(time.Second)), 0)
		}
		return nil
	})
	if err != nil {
		return provider.LastLoginResponse{}, p.fail(op, req.Role, err)
	}
	return resp, nil
}

var _ provider.LoginRecorder = (*Postgres)(nil)
