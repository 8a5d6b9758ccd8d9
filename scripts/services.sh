#!/usr/bin/env bash
# Make sure the system packages and database services the full test suite needs are present
# and running: PostgreSQL (127.0.0.1:5432, trust auth, database test), MariaDB (127.0.0.1:3306,
# root without password, database test), the MariaDB headers that ibis's mysqlclient builds
# against, and Debian's chromium, which the pinnacle ui browser test drives. On this machine
# kind they are usually there already; on a bare Debian box this installs them. Exits non-zero
# if a service cannot be brought up.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/_env.sh

missing=()
dpkg -s libmariadb-dev >/dev/null 2>&1 || missing+=(libmariadb-dev)
dpkg -s pkg-config >/dev/null 2>&1 || missing+=(pkg-config)
command -v pg_ctlcluster >/dev/null 2>&1 || missing+=(postgresql)
command -v mariadbd >/dev/null 2>&1 || [ -x /usr/sbin/mariadbd ] || missing+=(mariadb-server)
command -v java >/dev/null 2>&1 || missing+=(default-jre-headless)
[ -x /usr/bin/chromium ] || missing+=(chromium)  # pinnacle ui browser test (Playwright)
if [ ${#missing[@]} -gt 0 ]; then
  echo "+ apt-get install ${missing[*]}" >&2
  as_root apt-get update -qq >&2 || true
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >&2
fi

wait_for() { # name, command...
  local name=$1; shift
  for _ in $(seq 1 60); do "$@" >/dev/null 2>&1 && return 0; sleep 0.5; done
  echo "error: $name did not come up" >&2; return 1
}

if ! pg_isready -q -h 127.0.0.1 -p 5432; then
  echo "+ starting PostgreSQL" >&2
  as_root pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start >&2 \
    || as_root service postgresql start >&2
  wait_for PostgreSQL pg_isready -q -h 127.0.0.1 -p 5432
fi
if ! mariadb -uroot -h127.0.0.1 -e 'select 1' >/dev/null 2>&1; then
  echo "+ starting MariaDB" >&2
  as_root start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd >&2 \
    || as_root service mariadb start >&2
  wait_for MariaDB mariadb -uroot -h127.0.0.1 -e 'select 1'
fi

# Trust auth and a `test` database are what this machine kind ships; a fresh Debian install
# needs them made (idempotent).
if ! psql -h 127.0.0.1 -U postgres -d test -c 'select 1' >/dev/null 2>&1; then
  as_root su postgres -c "psql -c \"CREATE DATABASE test\"" >&2 || true
fi
mariadb -uroot -h127.0.0.1 -e 'CREATE DATABASE IF NOT EXISTS test' >&2
# ibis warns without time zone tables (see shared ENVIRONMENT.md); load them once.
if [ "$(mariadb -uroot -h127.0.0.1 -N -e 'select count(*) from mysql.time_zone_name')" = 0 ]; then
  mariadb-tzinfo-to-sql /usr/share/zoneinfo 2>/dev/null | mariadb -uroot -h127.0.0.1 mysql
fi
echo "services: PostgreSQL and MariaDB are up" >&2
