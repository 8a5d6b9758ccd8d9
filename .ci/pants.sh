#!/usr/bin/env bash
# Set up Pants on this machine if needed, then run it (default: `pants test package ::`).
#
#   .ci/pants.sh                  # check the generated files, then run every package's tests
#                                 # (but those marked pyspark or slow, see below) and build
#                                 # every wheel: `pants test package ::`
#   .ci/pants.sh --all            # the same with every test, pyspark and slow ones included
#   .ci/pants.sh -- <pants args>  # the same check, then any Pants command, e.g.
#                                 #   .ci/pants.sh -- test packages/pinnacle-sql:: -- -x
#   .ci/pants.sh --update         # regenerate 3rdparty/python/ (requirements.txt, editable/)
#                                 # and default.lock (needs PyPI) after a dependency or entry
#                                 # point changed in a pyproject.toml
#
# Idempotent; everything it installs lives in $PINNACLE_PANTS_CACHE (default
# ~/.cache/pinnacledb): a Python 3.9 venv with pantsbuild.pants (2.17.1 is the only release on
# PyPI and needs Python 3.9), the `pex` tool built from PyPI (Pants would download it from
# GitHub, which this machine cannot reach) and the machine-specific Pants config naming it.
# Machine-independent settings are in pants.toml; this machine's quirks in pants.ci.toml.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${PINNACLE_PANTS_CACHE:-$HOME/.cache/pinnacledb}
PANTS_VERSION=$(sed -n 's/^pants_version *= *"\(.*\)"/\1/p' "$ROOT/pants.toml")
PEX_VERSION=2.1.163
VENV=$CACHE/pants-venv-$PANTS_VERSION
PEX_DIR=$CACHE/pex-$PEX_VERSION
MACHINE_TOML=$CACHE/pants-machine.toml

log() { printf '[pants.sh %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

if [[ -z ${SSL_CERT_FILE:-} && -f /etc/ssl/certs/ca-certificates.crt ]]; then
  export SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
fi

# By default the Pants run skips the tests marked `pyspark` (a Spark session per test class:
# most of the time of the whole run) and `slow`, and the contract state machines: CI has just run every test through uv with
# the Hypothesis `ci` profile; this run proves the Pants build (BUILD files, lockfile, sandboxed
# imports, entry points, wheels) works. PINNACLE_PANTS_MARKERS overrides the selection.
markers=${PINNACLE_PANTS_MARKERS-not pyspark and not slow}
mode=run
case "${1:-}" in
  --update) mode=update ;;
  --all) markers="" ;;
  --) shift; markers=""; pants_args=("$@") ;;
  "") ;;
  *) die "unknown argument '$1' (usage: .ci/pants.sh [--all | --update | -- <pants args>])" ;;
esac
if [[ -z ${pants_args+set} ]]; then
  pants_args=(test package ::)
  # Appended to [pytest] args of pants.toml (which loads pinnacle_pants_plugin).
  # Pants shell-splits each element of that list, hence the inner quotes.
  # The state machines (the bulk of the time: pinnacle-ibis alone took 12 min with them) have
  # just run under the `ci` profile in the uv run; here they would only repeat at `dev` size.
  [[ -z $markers ]] \
    || pants_args+=("--pytest-args=+['-m \"$markers\"', '-k \"not state_machine\"']")
fi

find_python39() {
  local p
  for p in "${PINNACLE_PANTS_PYTHON:-}" "$(pyenv root 2>/dev/null)"/versions/3.9*/bin/python3.9 \
    "$HOME"/.pyenv/versions/3.9*/bin/python3.9 "$(uv python find 3.9 2>/dev/null)" \
    "$(command -v python3.9 2>/dev/null)"; do
    if [[ -n $p && -x $p ]] && "$p" -c 'import sys; assert sys.version_info[:2] == (3, 9)' 2>/dev/null; then
      echo "$p"
      return 0
    fi
  done
  return 1
}

# (a) Pants itself, in a Python 3.9 venv. The `.complete` marker makes an interrupted install
# start over instead of leaving a half-installed venv behind.
if [[ ! -f $VENV/.complete ]]; then
  py39=$(find_python39) || die "Pants $PANTS_VERSION needs Python 3.9 (set PINNACLE_PANTS_PYTHON)"
  log "installing pantsbuild.pants==$PANTS_VERSION into $VENV with $py39"
  rm -rf "$VENV"
  mkdir -p "$CACHE"
  "$py39" -m venv "$VENV"
  # pip works through the machine's pip config here; its warnings about local indexes are noise.
  "$VENV/bin/pip" install --quiet "pantsbuild.pants==$PANTS_VERSION" 2>&1 \
    | { grep -v "is ignored: it is neither a file nor a directory" || true; } >&2
  touch "$VENV/.complete"
fi

# (b) The pex tool, built from PyPI with the pex that Pants depends on. PIP_CONFIG_FILE=/dev/null
# because the machine's pip config breaks pex's vendored pip.
if [[ ! -f $PEX_DIR/pex ]]; then
  log "building pex $PEX_VERSION into $PEX_DIR"
  mkdir -p "$PEX_DIR"
  PIP_CONFIG_FILE=/dev/null "$VENV/bin/pex" "pex==$PEX_VERSION" -c pex -o "$PEX_DIR/pex.tmp" \
    --python-shebang '/usr/bin/env python3' ${SSL_CERT_FILE:+--cert "$SSL_CERT_FILE"}
  mv "$PEX_DIR/pex.tmp" "$PEX_DIR/pex"
fi

# (c) This machine's Pants config: where the pex tool is and its checksum.
sha=$(sha256sum "$PEX_DIR/pex" | cut -d' ' -f1)
size=$(stat -c %s "$PEX_DIR/pex")
known=""
for platform in linux_x86_64 linux_arm64 macos_x86_64 macos_arm64; do
  known+="\"v$PEX_VERSION|$platform|$sha|$size\", "
done
cat >"$MACHINE_TOML.tmp" <<EOF
# Written by .ci/pants.sh: the pex tool built from PyPI on this machine.
[pex-cli]
version = "v$PEX_VERSION"
known_versions = [${known%, }]
url_template = "file://$PEX_DIR/pex"
EOF
mv "$MACHINE_TOML.tmp" "$MACHINE_TOML"

export PANTS_CONFIG_FILES="['$ROOT/pants.toml', '$ROOT/pants.ci.toml', '$MACHINE_TOML']"
pants() { (cd "$ROOT" && "$VENV/bin/pants" "$@"); }

# (d) Run Pants.
case $mode in
  update)
    python3 "$ROOT/.ci/pants-reqs.py"
    log "pants generate-lockfiles (resolves every requirement from PyPI)"
    pants generate-lockfiles --resolve=python-default
    ;;
  run)
    python3 "$ROOT/.ci/pants-reqs.py" --check
    log "pants ${pants_args[*]}"
    pants "${pants_args[@]}"
    ;;
esac
log "done"
