#!/usr/bin/env bash
# Makes ROOT (default /var/lib/rotor/pg17root) a Debian trixie root holding
# PostgreSQL 17, for the tests of what only PostgreSQL 17 and later have
# (login event triggers) on a machine whose own PostgreSQL is older.
# pgcluster runs its binaries chrooted in ROOT (internal/pgcluster,
# FindServer). Needs root, debootstrap and Debian's mirror. Run by
# scripts/deps.sh --pg17; harmless to run again.
#
#   scripts/pg17root.sh [ROOT]
set -euo pipefail
root=${1:-${ROTOR_PG17_ROOT:-/var/lib/rotor/pg17root}}
mirror=${ROTOR_DEBIAN_MIRROR:-http://deb.debian.org/debian}

if [ ! -x "$root/usr/lib/postgresql/17/bin/postgres" ]; then
  mkdir -p "${root%/*}"
  # A root left half-made by an interrupted run is made again.
  rm -rf "$root.new"
  debootstrap --variant=minbase --include=postgresql-17 trixie "$root.new" "$mirror" >"${root}.log" 2>&1 ||
    { echo "pg17root.sh: debootstrap failed; see ${root}.log" >&2; exit 1; }
  rm -rf "$root"
  mv "$root.new" "$root"
  rm -f "$root"/var/cache/apt/archives/*.deb
fi

# Paths under ROOT mean the same file inside and outside it: ROOT/ROOT → /.
mkdir -p "$root${root%/*}"
ln -sfn / "$root$root"

# The server runs as the host's postgres user (pgcluster chowns its files to
# it); initdb looks that uid up, so the root's passwd must know it.
uid=$(id -u postgres) gid=$(id -g postgres)
sed -i "s/^postgres:x:[0-9]*:[0-9]*:/postgres:x:$uid:$gid:/" "$root/etc/passwd"
sed -i "s/^postgres:x:[0-9]*:/postgres:x:$gid:/" "$root/etc/group"
mkdir -p "$root/dev/shm"
chmod 1777 "$root/tmp" "$root/dev/shm"
