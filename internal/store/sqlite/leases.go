package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/rotorhq/rotor/internal/store"
)

// AcquireLease implements store.Store.
func (s *Store) AcquireLease(ctx context.Context, p store.AcquireLeaseParams) (*store.Lease, error) {
	if err := checkAcquire(p); err != nil {
		return nil, err
	}
	var out *store.Lease
	err := s.writeAs(ctx, p.Deferred, func(tx *wtx) error {
		var err error
		out, err = acquireLease(ctx, tx, p)
		return err
	})
	return acquired(p, out, err)
}

func checkAcquire(p store.AcquireLeaseParams) error {
	if p.Name == "" || p.Holder == "" || p.TTL <= 0 {
		return fmt.Errorf("acquire lease %q: name, holder and a positive ttl are required", p.Name)
	}
	return nil
}

// acquireLease takes the lease in tx (AcquireLease); refused, it returns
// the current lease and ErrLeaseHeld.
func acquireLease(ctx context.Context, tx *wtx, p store.AcquireLeaseParams) (*store.Lease, error) {
	// The row, released or not, carries the last token handed out.
	cur, err := scanLease(tx.QueryRowContext(ctx, `SELECT `+leaseColumns+` FROM leases WHERE name = ?`, p.Name))
	token := int64(1)
	switch {
	case errors.Is(err, store.ErrNotFound):
	case err != nil:
		return nil, err
	case cur.Holder == p.Holder:
		token = cur.Token
	case cur.Holder == "",
		!p.Now.Before(cur.ExpiresAt),
		p.TakeOverFrom != "" && cur.Holder == p.TakeOverFrom:
		token = cur.Token + 1
	default:
		return cur, store.ErrLeaseHeld
	}
	return putLease(ctx, tx, p.Name, p.Holder, p.Now.Add(p.TTL), token)
}

// acquired is AcquireLease's answer for the lease l and error err of its
// transaction.
func acquired(p store.AcquireLeaseParams, l *store.Lease, err error) (*store.Lease, error) {
	if errors.Is(err, store.ErrLeaseHeld) && l != nil {
		return l, fmt.Errorf("acquire lease %q: held by %s: %w", p.Name, l.Holder, err)
	}
	if err != nil {
		return nil, fmt.Errorf("acquire lease %q: %w", p.Name, err)
	}
	return l, nil
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
