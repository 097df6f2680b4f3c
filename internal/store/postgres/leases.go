package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/rotorhq/rotor/internal/store"
)

const leaseColumns = `name, holder, expires_at, token`

// AcquireLease implements store.Store. A lease whose expiry equals p.Now has
// expired.
func (s *Store) AcquireLease(ctx context.Context, p store.AcquireLeaseParams) (*store.Lease, error) {
	if err := checkAcquire(p); err != nil {
		return nil, err
	}
	var out *store.Lease
	err := s.writeAs(ctx, p.Deferred, func(tx pgx.Tx) error {
		var err error
		out, err = s.acquireLease(ctx, tx, p)
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
func (s *Store) acquireLease(ctx context.Context, tx pgx.Tx, p store.AcquireLeaseParams) (*store.Lease, error) {
	// A placeholder row (token 0, rolled back with the transaction if
	// the lease is refused) gives concurrent first acquisitions one
	// row to lock; without it both would see no row and both insert.
	if _, err := tx.Exec(ctx, s.sql(`INSERT INTO {schema}.leases (name, holder, expires_at, token) VALUES ($1, '', 0, 0)
		ON CONFLICT (name) DO NOTHING`), p.Name); err != nil {
		return nil, mapErr(err)
	}
	cur, err := scanLease(tx.QueryRow(ctx, s.sql(`SELECT `+leaseColumns+` FROM {schema}.leases WHERE name = $1 FOR UPDATE`), p.Name))
	if err != nil {
		return nil, err
	}
	token := cur.Token + 1
	switch {
	case cur.Holder == p.Holder:
		token = cur.Token
	case cur.Holder == "",
		!p.Now.Before(cur.ExpiresAt),
		p.TakeOverFrom != "" && cur.Holder == p.TakeOverFrom:
	default:
		return cur, store.ErrLeaseHeld
	}
	return s.putLease(ctx, tx, p.Name, p.Holder, p.Now.Add(p.TTL), token)
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
	l, err := scanLease(s.pool.QueryRow(ctx, s.sql(`UPDATE {schema}.leases SET expires_at = $3
		WHERE name = $1 AND holder = $2 RETURNING `+leaseColumns), p.Name, p.Holder, timeArg(p.Now.Add(p.TTL))))
	if errors.Is(err, store.ErrNotFound) {
		err = store.ErrLeaseLost
	}
	if err != nil {
		return nil, fmt.Errorf("renew lease %q: %w", p.Name, err)
	}
	return l, nil
}

// ReleaseLease implements store.Store. The row stays, holder blanked, to
// keep its token.
func (s *Store) ReleaseLease(ctx context.Context, p store.ReleaseLeaseParams) error {
	release := func(q querier) error {
		tag, err := q.Exec(ctx, s.sql(`UPDATE {schema}.leases SET holder = '' WHERE name = $1 AND holder = $2 AND holder <> ''`), p.Name, p.Holder)
		if err != nil {
			return mapErr(err)
		}
		if tag.RowsAffected() == 0 {
			return store.ErrLeaseLost
		}
		return nil
	}
	if err := s.single(ctx, p.Deferred, release); err != nil {
		return fmt.Errorf("release lease %q: %w", p.Name, err)
	}
	return nil
}

// GetLease implements store.Store; a released lease is ErrNotFound.
func (s *Store) GetLease(ctx context.Context, p store.GetLeaseParams) (*store.Lease, error) {
	l, err := scanLease(s.pool.QueryRow(ctx, s.sql(`SELECT `+leaseColumns+` FROM {schema}.leases WHERE name = $1 AND holder <> ''`), p.Name))
	if err != nil {
		return nil, fmt.Errorf("get lease %q: %w", p.Name, err)
	}
	return l, nil
}

func (s *Store) putLease(ctx context.Context, tx pgx.Tx, name, holder string, expiresAt time.Time, token int64) (*store.Lease, error) {
	return scanLease(tx.QueryRow(ctx, s.sql(`UPDATE {schema}.leases SET holder = $2, expires_at = $3, token = $4
		WHERE name = $1 RETURNING `+leaseColumns), name, holder, timeArg(expiresAt), token))
}

// checkFence fails with ErrFenced when f's lease has changed hands. FOR
// SHARE makes a concurrent takeover wait until this write commits, so the
// new holder reads the journal with this write in it, never before it.
func (s *Store) checkFence(ctx context.Context, tx pgx.Tx, f store.Fence) error {
	if f == (store.Fence{}) {
		return nil
	}
	var token int64
	err := tx.QueryRow(ctx, s.sql(`SELECT token FROM {schema}.leases WHERE name = $1 FOR SHARE`), f.Lease).Scan(&token)
	if errors.Is(err, pgx.ErrNoRows) {
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
		exp int64
	)
	if err := row.Scan(&l.Name, &l.Holder, &exp, &l.Token); err != nil {
		return nil, mapErr(err)
	}
	l.ExpiresAt = time.Unix(0, exp).UTC()
	return &l, nil
}
