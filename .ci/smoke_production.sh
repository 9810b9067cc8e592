#!/usr/bin/env bash
# Production smoke test: README.md's "## Production" commands, run as written on a fresh PostgreSQL
# database with DEBUG unset, then headless chromium over the running site (.ci/smoke_check.py).
#
# The commands are read from the README's fenced sh block, so the README and this test cannot drift:
# each NAME=value on a line gets this test's value (a placeholder "..." with no value here fails), and
# the long-running lines (gunicorn, celery) start in the background, each in its own process group,
# with its PID recorded. Whatever this script started is stopped by PID when it exits, however it exits.
# Needs PostgreSQL and Redis up (.ci/run starts them) and chromium with Playwright in .venv
# (`python3 dev.py test` installs the test dependencies). Run from anywhere: bash .ci/smoke_production.sh
set -euo pipefail
cd "$(dirname "$0")/.."

PORT="${LOUPE_SMOKE_PORT:-8000}"            # the README's port; another one is substituted if set
DB="${LOUPE_SMOKE_DB:-loupe_smoke}"
REDIS_DB="${LOUPE_SMOKE_REDIS_DB:-14}"
ITEMS="${LOUPE_SMOKE_ITEMS:-60}"
started=$(date +%s)
work=$(mktemp -d /tmp/loupe-smoke.XXXXXX)
pids=() names=()
beat_file_existed=$([ -e celerybeat-schedule ] && echo yes || echo no)

say() { printf '\n== %s  (%s s)\n' "$*" "$(( $(date +%s) - started ))"; }
fail() { printf '\nSMOKE TEST FAILED: %s\n' "$*" >&2; exit 1; }

stop_all() {
  local i pid
  for i in "${!pids[@]}"; do
    pid=${pids[$i]}
    kill -0 "$pid" 2>/dev/null || continue
    echo "stopping ${names[$i]} (PID $pid)"
    kill -TERM "$pid" 2>/dev/null || true
  done
  for i in "${!pids[@]}"; do
    pid=${pids[$i]}
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    # Still there after 20 s: its whole process group (gunicorn workers, celery pool children).
    kill -0 "$pid" 2>/dev/null && { echo "killing ${names[$i]} (process group $pid)"; kill -KILL -- "-$pid" 2>/dev/null || true; }
    # A process group leader gone may leave children behind if it was killed: end them too.
    kill -TERM -- "-$pid" 2>/dev/null || true
  done
}

on_exit() {
  local rc=$?
  trap - EXIT
  stop_all
  if [ "$rc" -ne 0 ]; then
    for f in "$work"/*.log; do [ -e "$f" ] && { echo "---- last lines of $(basename "$f")"; tail -25 "$f"; }; done
  fi
  [ "$beat_file_existed" = no ] && rm -f celerybeat-schedule celerybeat-schedule.db celerybeat-schedule.dat \
    celerybeat-schedule.dir celerybeat-schedule.bak
  rm -rf "$work"
  echo "smoke test took $(( $(date +%s) - started )) s"
  exit "$rc"
}
trap on_exit EXIT
trap 'exit 130' INT TERM

start_background() {  # name, command line (as in the README, values substituted)
  setsid bash -c "exec $2" >"$work/$1.log" 2>&1 < /dev/null &
  pids+=("$!") names+=("$1")
  echo "started $1: PID $!"
}

# --- a machine as the README assumes it: no .env, no DEBUG, nothing on the port ---------------------
[ -e .env ] && fail ".env exists: settings would read it; the smoke test runs the README as on a fresh machine"
unset DEBUG LOUPE_DEMO LOUPE_TESTING CELERY_TASK_ALWAYS_EAGER DJANGO_SETTINGS_MODULE
python3 - "$PORT" <<'EOF' || fail "port $PORT is busy (something listens on it): stop it, or set LOUPE_SMOKE_PORT"
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as gunicorn: old TIME_WAIT connections are no obstacle
s.bind(("0.0.0.0", int(sys.argv[1])))  # where the README's gunicorn binds; a listener makes this fail
EOF

say "fresh database $DB, Redis db $REDIS_DB"
psql -h 127.0.0.1 -U postgres -q -c "DROP DATABASE IF EXISTS ${DB};" -c "CREATE DATABASE ${DB};"
redis-cli -h 127.0.0.1 -p 6379 -n "$REDIS_DB" flushdb >/dev/null
redis-cli -h 127.0.0.1 -p 6379 -n "$((REDIS_DB - 1))" flushdb >/dev/null  # the cache (CACHE_URL)

# Values for the README's NAME=value words. STATIC_ROOT and MEDIA_ROOT are the operator's environment
# (not in the README block): kept out of the checkout.
secret=$(python3 -c 'import secrets; print(secrets.token_urlsafe(50))')
admin_password=$(python3 -c 'import secrets; print(secrets.token_urlsafe(16))')
export SMOKE_SET_DATABASE_URL="postgres://postgres@127.0.0.1:5432/${DB}"
export SMOKE_SET_CELERY_BROKER_URL="redis://127.0.0.1:6379/${REDIS_DB}"
export SMOKE_SET_CACHE_URL="redis://127.0.0.1:6379/$((REDIS_DB - 1))"
export SMOKE_SET_SECRET_KEY="$secret"
export SMOKE_SET_ALLOWED_HOSTS="127.0.0.1,localhost"
export SMOKE_SET_DJANGO_SUPERUSER_PASSWORD="$admin_password"
export STATIC_ROOT="$work/static" MEDIA_ROOT="$work/media"

say "README.md ## Production, as written"
python3 - "$PORT" >"$work/commands" <<'EOF' || fail "could not take the commands from README.md"
import os, re, shlex, sys

port = sys.argv[1]
readme = open("README.md", encoding="utf-8").read()
section = re.search(r"^## Production\n(.*?)(?=^## |\Z)", readme, re.S | re.M)
block = section and re.search(r"^```sh\n(.*?)^```", section.group(1), re.S | re.M)
if not block:
    sys.exit("README.md has no ```sh block under '## Production'")


def value(match):
    name, given = match.group(1), match.group(2)
    if f"SMOKE_SET_{name}" in os.environ:
        return f"{name}={shlex.quote(os.environ[f'SMOKE_SET_{name}'])}"
    if "..." in given:
        sys.exit(f"README.md's {name}={given} is a placeholder the smoke test has no value for")
    return match.group(0)


for line in block.group(1).splitlines():
    if not line.strip() or line.lstrip().startswith("#"):
        continue
    line = re.sub(r"(?<![\w.-])([A-Z][A-Z0-9_]*)=(\S*)", value, line)
    if port != "8000" and "gunicorn" in line:
        line = line.replace(":8000", f":{port}")
    print(line)
EOF
while IFS= read -r line <&3; do
  case "$line" in
    .venv/bin/gunicorn\ *) start_background gunicorn "$line" ;;
    .venv/bin/celery\ *worker*) start_background celery-worker "$line" ;;
    .venv/bin/celery\ *beat*) start_background celery-beat "$line" ;;
    *)
      echo "+ ${line:0:160}" | sed -E 's/(SECRET_KEY|PASSWORD)=[^ ]+/\1=***/g'
      eval "$line" >>"$work/setup.log" 2>&1 || { tail -30 "$work/setup.log"; fail "README line failed: ${line:0:80}"; }
      echo "  ($(( $(date +%s) - started )) s)"
      ;;
  esac
done 3<"$work/commands"
[ "${#pids[@]}" -eq 3 ] || fail "expected gunicorn, a celery worker and celery beat in README.md, started ${#pids[@]}"

base="http://127.0.0.1:${PORT}"
for _ in $(seq 1 120); do
  curl -sf -o /dev/null "$base/login/" && break
  for i in "${!pids[@]}"; do kill -0 "${pids[$i]}" 2>/dev/null || fail "${names[$i]} exited"; done
  sleep 0.5
done
curl -sf -o /dev/null "$base/login/" || fail "gunicorn does not answer $base/login/"

say "a project and logins (loupe_demo) on the production settings"
.venv/bin/python manage.py loupe_demo --items "$ITEMS" >"$work/loupe_demo.log" 2>&1 || fail "loupe_demo failed"
tail -7 "$work/loupe_demo.log"

say "headless chromium"
.venv/bin/python .ci/smoke_check.py --base "$base" --staff admin --staff-password="$admin_password" \
  --annotator demo-annotator --password loupe-demo-2026

say "services still up, and no error in their logs"
for i in "${!pids[@]}"; do kill -0 "${pids[$i]}" 2>/dev/null || fail "${names[$i]} (PID ${pids[$i]}) died"; done
if grep -nE "Traceback|\] ERROR|ERROR/|CRITICAL" "$work"/gunicorn.log "$work"/celery-*.log; then
  fail "errors in the service logs (above)"
fi
echo "gunicorn, celery worker and celery beat ran clean"
