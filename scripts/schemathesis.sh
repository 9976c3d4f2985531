#!/usr/bin/env bash
# Starts the binary on a free port with a fresh SQLite database and a seeded platform admin,
# then runs schemathesis against it: any 5xx or any response off the spec fails. The live
# notification stream never ends, so it is left out (its own test reads it over TCP).
# Usage: scripts/schemathesis.sh <dossier binary> <schemathesis executable>
set -euo pipefail
bin="$1"
schemathesis="$2"
work="$(mktemp -d)"
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
export DATABASE_URL="sqlite://$work/dossier.db"
export DOSSIER_BIND="127.0.0.1:$port"
export DOSSIER_JWT_SECRET="schemathesis-secret-0123456789abcdef"
export DOSSIER_SECRETS_KEY="$(head -c 32 /dev/urandom | base64)"
# Generated logins must not lock the seeded admin out mid-run.
export DOSSIER_LOGIN_MAX_FAILURES_PER_ADDRESS=1000000
export DOSSIER_LOGIN_MAX_FAILURES_PER_ACCOUNT=1000000
# One token writes thousands of generated requests a minute.
export DOSSIER_WRITES_PER_MINUTE=0
password="schemathesis admin password"

"$bin" create-user --email admin@schemathesis.example --password "$password" --role platform --admin >/dev/null
"$bin" >"$work/server.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true; wait $server 2>/dev/null || true; rm -rf "$work"' EXIT
for _ in $(seq 50); do curl -fsS "http://127.0.0.1:$port/health/ready" >/dev/null 2>&1 && break; sleep 0.2; done

token="$(curl -fsS "http://127.0.0.1:$port/v1/auth/token" -H 'content-type: application/json' \
    -d "{\"email\":\"admin@schemathesis.example\",\"password\":\"$password\"}" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')"

status=0
"$schemathesis" run "http://127.0.0.1:$port/openapi.json" \
    --header "Authorization: Bearer $token" \
    --checks not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance,negative_data_rejection \
    --max-examples "${SCHEMATHESIS_MAX_EXAMPLES:-40}" \
    --exclude-path /v1/notifications/stream \
    --request-timeout 10 \
    --seed 1 \
    --no-color || status=$?
if [ "$status" -ne 0 ]; then
    echo "schemathesis failed; server log tail:"
    tail -n 40 "$work/server.log"
fi
exit "$status"
