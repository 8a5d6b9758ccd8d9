# Shared set-up for scripts/*: sourced, not run.
# This machine kind intercepts TLS; uv only trusts the system bundle when told so.
if [ -z "${SSL_CERT_FILE:-}" ] && [ -f /etc/ssl/certs/ca-certificates.crt ]; then
  export SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
fi
export UV_LINK_MODE=${UV_LINK_MODE:-copy}
ensure_uv() {
  if command -v uv >/dev/null 2>&1; then UV=(uv); return; fi
  if python3 -m uv --version >/dev/null 2>&1; then UV=(python3 -m uv); return; fi
  echo "+ installing uv with pip" >&2
  python3 -m pip install --quiet --disable-pip-version-check uv >&2
  UV=(python3 -m uv)
}
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else "$@"; fi; }
