package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/rotorhq/rotor/internal/store"
)

// AcquireLease implements store.Store. A lease whose expiry equals p.Now has
// expired: the holder's TTL is a promise up to, not including, that instant.
func (s *Store) AcquireLease(ctx context.Context, p store.AcquireLeaseParams) (*store.Lease, error) {
	if p.Name == "" || p.Holder == "" || p.TTL <= 0 {
		return nil, fmt.Errorf("acquire lease %q: name, holder and a positive ttl are required", p.Name)
	}
	var out *store.Lease
	err := s.writeAs(ctx, p.Deferred, func(tx *wtx) error {
		// The row, released or not, carries the last token handed out.
		cur, err := scanLease(tx.QueryRowContext(ctx, `SELECT `+leaseColumns+` FROM leases WHERE name = ?`, p.Name))
		token := int64(1)
		switch {
		case errors.Is(err, store.ErrNotFound):
		case err != nil:
			return err
		case cur.Holder == p.Holder:
			token = cur.Token
		case cur.Holder == "",
			!p.Now.Before(cur.ExpiresAt),
			p.TakeOverFrom != "" && cur.Holder == p.TakeOverFrom:
			token = cur.Token + 1
		default:
			out = cur
			return store.ErrLeaseHeld
		}
		out, err = putLease(ctx, tx, p.Name, p.Holder, p.Now.Add(p.TTL), token)
		return err
	})
	if errors.Is(err, store.ErrLeaseHeld) {
		return out, fmt.Errorf("acquire lease %q: held by %s: %w", p.Name, out.Holder, err)
	}
	if err != nil {
		return nil, fmt.Errorf("acquire lease %q: %w", p.Name, err)
	}
	return out, nil
}

// RenewLease implements store.Store. A holder whose lease expired but that
// nobody took over may renew it: no one else can have acted under it.
func (s *Store) RenewLease(ctx context.Context, p store.RenewLeaseParams) (*store.Lease, error) {
	if p.TTL <= 0 {
		return nil, fmt.Errorf("renew lease %q: ttl must be positive", p.Name)
	}
	if p.Holder == "" {
		return nil, fmt.Errorf("renew lease %q: %w", p.Name, store.ErrLeaseLost)
	}
	var out *store.Lease
	err := s.write(ctx, func(tx *wtx) error {
		cur, err := getLease(ctx, tx, p.Name)
		if errors.Is(err, store.ErrNotFound) {
			return store.ErrLeaseLost
		}
		if err != nil {
			return err
		}
		if cur.Holder != p.Holder {
			return store.ErrLeaseLost
		}
		out, err = putLease(ctx, tx, p.Name, p.Holder, p.Now.Add(p.TTL), cur.Token)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("renew lease %q: %w", p.Name, err)
	}
	return out, nil
}

// ReleaseLease implements store.Store. Releasing a lease that is already
// gone is ErrLeaseLost too: the caller no longer holds it either way. The
// row stays, holder blanked, to keep its token.
func (s *Store) ReleaseLease(ctx context.Context, p store.ReleaseLeaseParams) error {
	err := s.writeAs(ctx, p.Deferred, func(tx *wtx) error {
		res, err := tx.ExecContext(ctx, `UPDATE leases SET holder = '' WHERE name = ? AND holder = ? AND holder <> ''`, p.Name, p.Holder)
		if err != nil {
			return mapErr(err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return err
		}
		if n == 0 {
			return store.ErrLeaseLost
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("release lease %q: %w", p.Name, err)
	}
	return nil
}

// GetLease implements store.Store.
func (s *Store) GetLease(ctx context.Context, p store.GetLeaseParams) (*store.Lease, error) {
	name := p.Name
	l, err := getLease(ctx, reads{s}, name)
	if err != nil {
		return nil, fmt.Errorf("get lease %q: %w", name, err)
	}
	return l, nil
}

const leaseColumns = `name, holder, expires_at, token`

// getLease returns a held lease; a released one is ErrNotFound.
func getLease(ctx context.Context, q querier, name string) (*store.Lease, error) {
	return scanLease(q.QueryRowContext(ctx, `SELECT `+leaseColumns+` FROM leases WHERE name = ? AND holder <> ''`, name))
}

func putLease(ctx context.Context, tx *wtx, name, holder string, expiresAt time.Time, token int64) (*store.Lease, error) {
	return scanLease(tx.QueryRowContext(ctx, `
		INSERT INTO leases (name, holder, expires_at, token) VALUES (?, ?, ?, ?)
		ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at, token = excluded.token
		RETURNING `+leaseColumns,
		name, holder, timeArg(expiresAt), token))
}

// checkFence fails with ErrFenced when f's lease has changed hands since f
// was taken. It runs inside the write's BEGIN IMMEDIATE transaction, so no
// takeover can slip in between the check and the write.
func checkFence(ctx context.Context, tx *wtx, f store.Fence) error {
	if f == (store.Fence{}) {
		return nil
	}
	var token int64
	err := tx.QueryRowContext(ctx, `SELECT token FROM leases WHERE name = ?`, f.Lease).Scan(&token)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("lease %q has never been taken: %w", f.Lease, store.ErrFenced)
	}
	if err != nil {
		return mapErr(err)
	}
	if token != f.Token {
		return fmt.Errorf("lease %q has token %d, the write carries %d: %w", f.Lease, token, f.Token, store.ErrFenced)
	}
	return nil
}

func scanLease(row rowScanner) (*store.Lease, error) {
	var (
		l   store.Lease
		exp sql.NullInt64
	)
	if err := row.Scan(&l.Name, &l.Holder, &exp, &l.Token); err != nil {
		return nil, mapErr(err)
	}
	l.ExpiresAt = timeVal(exp)
	return &l, nil
}
