#!/usr/bin/env bash
# Fails, naming them, when files over LIMIT bytes (default 5 MB) are
# tracked by git: a committed binary or data dump bloats every clone
# forever, even after it is deleted again. It reads the index, so a file
# staged but not yet committed counts too. Outside a git checkout (a source
# tarball) there is nothing tracked to check.
set -euo pipefail
limit=${1:-5242880}
cd "$(dirname "${BASH_SOURCE[0]}")/.."
if ! command -v git >/dev/null; then
  [ -e .git ] || exit 0
  echo "large-files.sh: this is a git checkout but git is not installed (apt-get install git)" >&2
  exit 1
fi
git rev-parse --git-dir >/dev/null 2>&1 || exit 0

# ls-files --stage: "<mode> <object> <stage>\t<path>"; gitlinks (160000)
# name commits of other repositories, not blobs.
big=$(git ls-files -z --stage |
  while IFS= read -r -d '' rec; do
    read -r mode object _ <<<"${rec%%$'\t'*}"
    [ "$mode" = 160000 ] || printf '%s %s\n' "$object" "${rec#*$'\t'}"
  done |
  git cat-file --batch-check='%(objectsize) %(rest)' |
  awk -v limit="$limit" '$1 > limit { printf "  %s (%d bytes)\n", substr($0, index($0, " ") + 1), $1 }')
if [ -n "$big" ]; then
  echo "large-files.sh: files over $limit bytes are tracked by git; remove them (git rm --cached) and add them to .gitignore:" >&2
  echo "$big" >&2
  exit 1
fi
