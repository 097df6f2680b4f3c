package pgbouncer

import "context"

// PendingLogins is the number of role's server logins under way, as
// reloadBetweenLogins sees it (SHOW POOLS sv_login).
func (t *Target) PendingLogins(ctx context.Context, role string) (int, error) {
	conn, err := t.admin.connect(ctx)
	if err != nil {
		return 0, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	return t.pending(ctx, conn, role, "sv_login")
}
