#!/usr/bin/env bash
# Installs what rotor's demo and tests need and is not there yet:
# PostgreSQL's server binaries, PgBouncer, Node.js + npm with the pinned
# dotenv under internal/target/dotenv/testdata/node, a C compiler (go test
# -race needs cgo, which Go turns off when it finds none), and (only with
# --browser or ROTOR_DEPS_BROWSER=1) Chromium, and (only with --pg17 or
# ROTOR_DEPS_PG17=1) a PostgreSQL 17 for what older servers lack: the
# system's own when it is 17 or later, else a Debian trixie root holding it
# (scripts/pg17root.sh; pgcluster runs it chrooted). It prints nothing when
# everything is there.
#
# As root with apt-get it installs Debian's packages itself; anywhere else
# it stops (exit 1) with the exact command to run, because a test run that
# skips what it cannot reach proves nothing.
#
#   scripts/deps.sh [--plan] [--browser] [--pg17] [postgresql|pgbouncer|node|cc|chromium|pg17]...
#
# No component named means all of them but chromium. --plan prints the
# commands it would run, one per line after "+ ", and runs none of them;
# scripts/deps_test.go drives it with a fake PATH. ROTOR_DEPS_SYSROOT
# prefixes the fixed paths it looks in besides PATH (/usr/lib/postgresql,
# /usr/sbin), for the same test.
set -euo pipefail

# Only builtins and uname and id, so that a PATH of fakes can drive the
# whole decision.
here=${BASH_SOURCE[0]%/*}
[ "$here" = "${BASH_SOURCE[0]}" ] && here=.
repo=$(cd "$here/.." && pwd)
nodedir=internal/target/dotenv/testdata/node
sysroot=${ROTOR_DEPS_SYSROOT:-}

plan=0
browser=${ROTOR_DEPS_BROWSER:-0}
pg17=${ROTOR_DEPS_PG17:-0}
pg17root=${ROTOR_PG17_ROOT:-/var/lib/rotor/pg17root}
want=()
for arg in "$@"; do
  case $arg in
    --plan) plan=1 ;;
    --browser) browser=1 ;;
    --pg17) pg17=1 ;;
    postgresql | pgbouncer | node | cc | chromium | pg17) want+=("$arg") ;;
    *)
      echo "deps.sh: unknown argument $arg (want --plan, --browser, --pg17, postgresql, pgbouncer, node, cc, chromium, pg17)" >&2
      exit 2
      ;;
  esac
done
if [ ${#want[@]} -eq 0 ]; then
  want=(postgresql pgbouncer node cc)
fi
if [ "$browser" = 1 ]; then
  want+=(chromium)
fi
if [ "$pg17" = 1 ]; then
  want+=(pg17)
fi
wants() {
  local w
  for w in "${want[@]}"; do [ "$w" = "$1" ] && return 0; done
  return 1
}

run() {
  if [ "$plan" = 1 ]; then
    echo "+ $*"
  else
    "$@"
  fi
}

# pgcluster needs initdb, pg_ctl and postgres side by side: in the dir of
# the initdb on PATH, or in one of Debian's per-version dirs.
has_pg_server() {
  local dir p
  if p=$(command -v initdb); then
    dir=${p%/*}
    [ -x "$dir/pg_ctl" ] && [ -x "$dir/postgres" ] && return 0
  fi
  for dir in "$sysroot"/usr/lib/postgresql/*/bin; do
    [ -x "$dir/initdb" ] && [ -x "$dir/pg_ctl" ] && [ -x "$dir/postgres" ] && return 0
  done
  return 1
}
has_pgbouncer() { command -v pgbouncer >/dev/null || [ -x "$sysroot/usr/sbin/pgbouncer" ]; }
# PostgreSQL 17 or later: one of Debian's per-version dirs, or the root
# scripts/pg17root.sh made (with its link from its own path to /).
has_pg17() {
  local dir v
  for dir in "$sysroot"/usr/lib/postgresql/*/bin; do
    v=${dir%/bin}
    v=${v##*/}
    [[ $v =~ ^[0-9]+$ ]] && [ "$v" -ge 17 ] && [ -x "$dir/postgres" ] && return 0
  done
  [ -x "$sysroot$pg17root/usr/lib/postgresql/17/bin/postgres" ] && [ -L "$sysroot$pg17root$pg17root" ]
}
has_chromium() { command -v chromium >/dev/null || command -v chromium-browser >/dev/null || command -v google-chrome >/dev/null; }

# Missing components, and the packages that bring them per package manager.
missing=() apt=() brew=() xcode=0
os=$(uname -s)
# The compiler go uses for cgo when $CC is not set.
cc=${CC:-gcc}
[ "$os" = Darwin ] && cc=${CC:-clang}
if wants postgresql && ! has_pg_server; then
  missing+=("PostgreSQL server (initdb, pg_ctl, postgres)")
  apt+=(postgresql postgresql-contrib)
  brew+=(postgresql@17)
fi
if wants pgbouncer && ! has_pgbouncer; then
  missing+=(PgBouncer)
  apt+=(pgbouncer)
  brew+=(pgbouncer)
fi
if wants node; then
  if ! command -v node >/dev/null; then
    missing+=(Node.js)
    apt+=(nodejs)
    brew+=(node)
  fi
  if ! command -v npm >/dev/null; then
    missing+=(npm)
    apt+=(npm)
    # Homebrew's node formula brings npm.
    [ -n "$(command -v node)" ] && brew+=(node)
  fi
fi
if wants cc && ! command -v "$cc" >/dev/null; then
  missing+=("C compiler ($cc, for go test -race)")
  # gcc only recommends the C library headers cgo needs.
  apt+=(gcc libc6-dev)
  xcode=1
fi
if wants chromium && ! has_chromium; then
  missing+=(Chromium)
  apt+=(chromium)
  brew+=(--cask chromium)
fi

pg17root_needed=0
if wants pg17 && ! has_pg17; then
  if [ "$os" = Linux ]; then
    missing+=("PostgreSQL 17 (a Debian trixie root at $pg17root)")
    command -v debootstrap >/dev/null || apt+=(debootstrap)
    pg17root_needed=1
  else
    missing+=("PostgreSQL 17")
    brew+=(postgresql@17)
  fi
fi

if [ ${#missing[@]} -gt 0 ]; then
  what=${missing[0]}
  for m in "${missing[@]:1}"; do what+=", $m"; done
  if [ "$os" = Linux ] && command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
    how=
    [ ${#apt[@]} -gt 0 ] && how="installing ${apt[*]}"
    [ "$pg17root_needed" = 1 ] && how+="${how:+, then }making the PostgreSQL 17 root with scripts/pg17root.sh"
    echo "deps.sh: missing $what; $how" >&2
    export DEBIAN_FRONTEND=noninteractive
    if [ ${#apt[@]} -gt 0 ]; then
      run apt-get update -qq
      run apt-get install -y -qq --no-install-recommends "${apt[@]}"
    fi
    installed=1
  else
    {
      echo "deps.sh: missing $what (make test refuses to skip what needs it). Run:"
      if [ "$os" = Darwin ]; then
        [ "$xcode" = 1 ] && echo "  xcode-select --install"
        if [ ${#brew[@]} -gt 0 ]; then
          command -v brew >/dev/null || echo "  # Homebrew first: https://brew.sh"
          echo "  brew install ${brew[*]}"
        fi
        if [[ " ${brew[*]} " == *" postgresql@17 "* ]]; then
          # postgresql@17 is keg-only: its initdb is not linked onto PATH.
          echo "  export PATH=\"\$(brew --prefix postgresql@17)/bin:\$PATH\""
        fi
      elif command -v apt-get >/dev/null; then
        [ ${#apt[@]} -gt 0 ] && echo "  sudo apt-get update && sudo apt-get install -y --no-install-recommends ${apt[*]}"
        [ "$pg17root_needed" = 1 ] && echo "  sudo $repo/scripts/pg17root.sh $pg17root"
      else
        echo "  # your system's packages for them; on Debian/Ubuntu: apt-get install ${apt[*]}"
      fi
      echo "then run make again."
    } >&2
    exit 1
  fi
fi

# Debian starts the packaged services on install; rotor's demo and tests
# start throwaway servers of their own and need neither.
stop_packaged_postgresql() {
  local ver name rest
  command -v pg_lsclusters >/dev/null || return 0
  while read -r ver name rest; do
    pg_ctlcluster "$ver" "$name" stop || true
  done < <(pg_lsclusters -h 2>/dev/null)
}
stop_packaged_pgbouncer() {
  command -v service >/dev/null || return 0
  service pgbouncer stop >/dev/null 2>&1 || true
}
if [ "${installed:-0}" = 1 ]; then
  [[ " ${apt[*]} " == *" postgresql "* ]] && run stop_packaged_postgresql
  [[ " ${apt[*]} " == *" pgbouncer "* ]] && run stop_packaged_pgbouncer
fi

# As root, pgcluster runs the server as the postgres user, which the
# Debian package creates but a hand-built PostgreSQL may not have.
if wants postgresql && [ "$(id -u)" = 0 ] && ! id postgres >/dev/null 2>&1; then
  run useradd --system --home-dir /var/lib/postgresql --shell /bin/bash postgres
fi

# PostgreSQL 17 in a root of its own, once the postgres user exists (the
# root's server runs as that uid).
if [ "$pg17root_needed" = 1 ]; then
  run "$repo/scripts/pg17root.sh" "$pg17root"
fi

# The pinned dotenv: installed when absent or older than the lock file.
if wants node; then
  lock=$repo/$nodedir/package-lock.json
  installed_lock=$repo/$nodedir/node_modules/.package-lock.json
  if [ ! -f "$repo/$nodedir/node_modules/dotenv/package.json" ] || [ "$lock" -nt "$installed_lock" ]; then
    run npm ci --prefix "$repo/$nodedir" --silent --no-audit --no-fund
  fi
fi
