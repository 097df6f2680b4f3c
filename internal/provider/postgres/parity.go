package postgres

import (
	"context"
	"fmt"
	"slices"
	"strconv"

	"github.com/jackc/pgx/v5"

	"github.com/rotorhq/rotor/internal/provider"
)

// fact is one thing a role has that the others should have too. option is
// the grant or admin option, compared separately so that "has SELECT but
// without the grant option" reads as one difference, not two.
type fact struct {
	order  int // groups differences by kind in the output
	text   string
	option string
}

const (
	orderAttribute = iota
	orderMembership
	orderSetting
	orderOwnership
	orderPrivilege
)

type roleFacts struct {
	connLimit int
	facts     map[string]fact
}

func (rf *roleFacts) add(f fact) {
	if old, ok := rf.facts[f.text]; ok && old.option != "" {
		return
	}
	rf.facts[f.text] = f
}

// Parity compares the first role with each of the others. Object
// privileges are read in the admin connection's database (plus database
// privileges, which are cluster-wide); privileges in other databases,
// default privileges and large objects are not compared.
func (p *Postgres) Parity(ctx context.Context, req provider.ParityRequest) (provider.ParityResponse, error) {
	op := fmt.Sprintf("compare the privileges of roles %s", quotedList(req.Roles))
	if len(req.Roles) == 0 {
		return provider.ParityResponse{}, invalid(op, "no roles given; name the roles to compare")
	}
	for _, r := range req.Roles {
		if err := checkRoleName(op, r); err != nil {
			return provider.ParityResponse{}, err
		}
	}
	var all map[string]*roleFacts
	err := p.conns.with(ctx, func(conn *pgx.Conn) error {
		// One snapshot, so that a grant racing with the comparison cannot
		// produce a difference that never existed.
		return pgx.BeginTxFunc(ctx, conn, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
			var err error
			all, err = readFacts(ctx, tx, op, req.Roles)
			return err
		})
	})
	if err != nil {
		return provider.ParityResponse{}, p.fail(op, "", err)
	}
	var diffs []string
	ref := req.Roles[0]
	for _, other := range req.Roles[1:] {
		if other == ref {
			continue
		}
		diffs = append(diffs, compare(ref, all[ref], other, all[other])...)
	}
	return provider.ParityResponse{Differences: diffs}, nil
}

func compare(a string, af *roleFacts, b string, bf *roleFacts) []string {
	var diffs []string
	if af.connLimit != bf.connLimit {
		diffs = append(diffs, fmt.Sprintf("%s has connection limit %s but %s has %s", b, connLimit(bf.connLimit), a, connLimit(af.connLimit)))
	}
	keys := make([]fact, 0, len(af.facts)+len(bf.facts))
	for _, f := range af.facts {
		keys = append(keys, f)
	}
	for k, f := range bf.facts {
		if _, ok := af.facts[k]; !ok {
			keys = append(keys, f)
		}
	}
	slices.SortFunc(keys, func(x, y fact) int {
		if x.order != y.order {
			return x.order - y.order
		}
		switch {
		case x.text < y.text:
			return -1
		case x.text > y.text:
			return 1
		}
		return 0
	})
	for _, k := range keys {
		fa, inA := af.facts[k.text]
		fb, inB := bf.facts[k.text]
		switch {
		case !inB:
			diffs = append(diffs, fmt.Sprintf("%s lacks %s that %s has", b, k.text, a))
		case !inA:
			diffs = append(diffs, fmt.Sprintf("%s lacks %s that %s has", a, k.text, b))
		case fa.option != "" && fb.option == "":
			diffs = append(diffs, fmt.Sprintf("%s lacks the %s for %s that %s has", b, fa.option, k.text, a))
		case fb.option != "" && fa.option == "":
			diffs = append(diffs, fmt.Sprintf("%s lacks the %s for %s that %s has", a, fb.option, k.text, b))
		}
	}
	return diffs
}

func connLimit(n int) string {
	if n < 0 {
		return "none"
	}
	return strconv.Itoa(n)
}

func readFacts(ctx context.Context, tx pgx.Tx, op string, roles []string) (map[string]*roleFacts, error) {
	all := map[string]*roleFacts{}
	rows, err := tx.Query(ctx, `
		SELECT rolname, rolsuper, rolinherit, rolcreaterole, rolcreatedb, rolreplication, rolbypassrls, rolconnlimit
		FROM pg_roles WHERE rolname = ANY($1::text[])`, roles)
	if err != nil {
		return nil, err
	}
	var (
		name                                                  string
		super, inherit, createRole, createDB, repl, bypassRLS bool
		limit                                                 int
	)
	_, err = pgx.ForEachRow(rows, []any{&name, &super, &inherit, &createRole, &createDB, &repl, &bypassRLS, &limit}, func() error {
		rf := &roleFacts{connLimit: limit, facts: map[string]fact{}}
		for attr, has := range map[string]bool{
			"SUPERUSER": super, "INHERIT": inherit, "CREATEROLE": createRole,
			"CREATEDB": createDB, "REPLICATION": repl, "BYPASSRLS": bypassRLS,
		} {
			if has {
				rf.add(fact{order: orderAttribute, text: "attribute " + attr})
			}
		}
		all[name] = rf
		return nil
	})
	if err != nil {
		return nil, err
	}
	for _, r := range roles {
		if all[r] == nil {
			return nil, roleNotFound(op, r)
		}
	}

	rows, err = tx.Query(ctx, `
		SELECT l.rolname, g.rolname, m.admin_option
		FROM pg_auth_members m
		JOIN pg_roles g ON g.oid = m.roleid
		JOIN pg_roles l ON l.oid = m.member
		WHERE l.rolname = ANY($1::text[])`, roles)
	if err != nil {
		return nil, err
	}
	var (
		group string
		admin bool
	)
	_, err = pgx.ForEachRow(rows, []any{&name, &group, &admin}, func() error {
		f := fact{order: orderMembership, text: "membership in role " + group}
		if admin {
			f.option = "admin option"
		}
		all[name].add(f)
		return nil
	})
	if err != nil {
		return nil, err
	}

	rows, err = tx.Query(ctx, `
		SELECT r.rolname, coalesce(d.datname, ''), s.setconfig
		FROM pg_db_role_setting s
		JOIN pg_roles r ON r.oid = s.setrole
		LEFT JOIN pg_database d ON d.oid = s.setdatabase
		WHERE r.rolname = ANY($1::text[])`, roles)
	if err != nil {
		return nil, err
	}
	var (
		database string
		config   []string
	)
	_, err = pgx.ForEachRow(rows, []any{&name, &database, &config}, func() error {
		for _, kv := range config {
			text := "setting " + kv
			if database != "" {
				text += " in database " + database
			}
			all[name].add(fact{order: orderSetting, text: text})
		}
		return nil
	})
	if err != nil {
		return nil, err
	}

	rows, err = tx.Query(ctx, privilegesSQL, roles)
	if err != nil {
		return nil, err
	}
	var (
		privilege, kind, object string
		grantable               bool
	)
	_, err = pgx.ForEachRow(rows, []any{&name, &privilege, &grantable, &kind, &object}, func() error {
		if privilege == "OWNER" {
			all[name].add(fact{order: orderOwnership, text: "ownership of " + kind + " " + object})
			return nil
		}
		f := fact{order: orderPrivilege, text: privilege + " on " + kind + " " + object}
		if grantable {
			f.option = "grant option"
		}
		all[name].add(f)
		return nil
	})
	return all, err
}

// privilegesSQL lists, for each of the roles $1, the privileges granted to
// it directly on relations, columns, schemas, databases and functions, and
// the objects it owns. An owner's own ACL entries are left out: ownership
// already implies them and is reported as such.
const privilegesSQL = `
WITH r AS (SELECT oid, rolname FROM pg_roles WHERE rolname = ANY($1::text[])),
objects AS (
	SELECT CASE c.relkind WHEN 'v' THEN 'view' WHEN 'm' THEN 'materialized view'
	                      WHEN 'S' THEN 'sequence' WHEN 'f' THEN 'foreign table' ELSE 'table' END AS kind,
	       format('%I.%I', n.nspname, c.relname) AS name, c.relacl AS acl, c.relowner AS owner
	FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
	WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')
	  AND (c.relacl IS NOT NULL OR c.relowner IN (SELECT oid FROM r))
	UNION ALL
	SELECT 'column', format('%I.%I.%I', n.nspname, c.relname, a.attname), a.attacl, c.relowner
	FROM pg_attribute a
	JOIN pg_class c ON c.oid = a.attrelid
	JOIN pg_namespace n ON n.oid = c.relnamespace
	WHERE a.attacl IS NOT NULL AND a.attnum > 0 AND NOT a.attisdropped
	UNION ALL
	SELECT 'schema', format('%I', nspname), nspacl, nspowner
	FROM pg_namespace
	WHERE nspacl IS NOT NULL OR nspowner IN (SELECT oid FROM r)
	UNION ALL
	SELECT 'database', format('%I', datname), datacl, datdba
	FROM pg_database
	WHERE datacl IS NOT NULL OR datdba IN (SELECT oid FROM r)
	UNION ALL
	SELECT CASE p.prokind WHEN 'p' THEN 'procedure' ELSE 'function' END,
	       format('%I.%I(%s)', n.nspname, p.proname, pg_get_function_identity_arguments(p.oid)),
	       p.proacl, p.proowner
	FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
	WHERE p.proacl IS NOT NULL OR p.proowner IN (SELECT oid FROM r)
)
SELECT r.rolname, a.privilege_type, a.is_grantable, o.kind, o.name
FROM objects o
CROSS JOIN LATERAL aclexplode(o.acl) a
JOIN r ON r.oid = a.grantee
WHERE a.grantee <> o.owner
UNION ALL
SELECT r.rolname, 'OWNER', false, o.kind, o.name
FROM objects o JOIN r ON r.oid = o.owner`
