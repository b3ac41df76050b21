#!/usr/bin/env bash
# tests/pg/cluster.sh -- a throw-away PostgreSQL 15 cluster for the test suite.
#
#   cluster.sh start DIR   initdb in DIR/data, start on a free 127.0.0.1 port,
#                          write the port to DIR/port; prints the port
#   cluster.sh stop DIR    stop it (fast, then immediate) and remove DIR/data
#
# Run as root (CI does), the cluster belongs to `nobody`: PostgreSQL refuses
# to run as root.  The socket lives in DIR too, so nothing outside DIR is
# touched and several suites can run side by side.  The superuser is `owner`
# with password auth on TCP (scram), trust only on the private socket.
set -euo pipefail
cmd=${1:?start|stop}
dir=$(realpath -m "${2:?DIR}")
bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
[ -x "$bin/initdb" ] || { echo "cluster.sh: PostgreSQL server binaries not found; run .ci/deps (postgresql-15)" >&2; exit 2; }
as_owner() {
  if [ "$(id -u)" = 0 ]; then runuser -u nobody -- "$@"; else "$@"; fi
}

case $cmd in
start)
  mkdir -p "$dir"
  [ "$(id -u)" = 0 ] && chown nobody "$dir"
  chmod 700 "$dir"
  rm -rf "$dir/data"
  printf 'owner-secret\n' > "$dir/pwfile"
  [ "$(id -u)" = 0 ] && chown nobody "$dir/pwfile"
  as_owner "$bin/initdb" -D "$dir/data" -U owner --pwfile="$dir/pwfile" -A scram-sha-256 \
    --auth-local=trust -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 \
    || { cat "$dir/initdb.log" >&2; exit 1; }
  for try in $(seq 1 20); do
    port=$(( 20000 + (RANDOM * 32768 + RANDOM) % 40000 ))
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && continue   # taken
    if as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
         -o "-p $port -c listen_addresses=127.0.0.1 -c unix_socket_directories=$dir -c fsync=off -c max_connections=60" \
         start >/dev/null 2>>"$dir/pg_ctl.err"; then
      echo "$port" > "$dir/port"
      echo "$port"
      exit 0
    fi
  done
  echo "cluster.sh: could not start PostgreSQL; see $dir/server.log" >&2
  exit 1
  ;;
stop)
  [ -d "$dir/data" ] || exit 0
  as_owner "$bin/pg_ctl" -D "$dir/data" -m fast -w -t 30 stop >/dev/null 2>&1 \
    || as_owner "$bin/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true
  rm -rf "$dir/data" "$dir/port" "$dir/pwfile"
  ;;
*) echo "usage: cluster.sh start|stop DIR" >&2; exit 2 ;;
esac
