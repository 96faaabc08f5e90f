#!/usr/bin/env bash
# The README's SoftHSM walk-through as one script: from an empty token to a PDF signed with a key
# that never leaves it. Everything happens in WORK (default: a new temporary directory) with a
# SoftHSM configuration and token directory of its own (SOFTHSM2_CONF), so no other token is
# touched. tests/it/hsm.rs runs it with the server on a free port, on both databases.
#
#   docs/hsm-walkthrough.sh                      # `sigil` on PATH, https://127.0.0.1:8443, SQLite
#   SIGIL=target/release/sigil LISTEN=127.0.0.1:0 DATABASE_URL=postgres://… docs/hsm-walkthrough.sh
set -euo pipefail
SIGIL=${SIGIL:-sigil}
LISTEN=${LISTEN:-127.0.0.1:8443}
MODULE=${MODULE:-/usr/lib/softhsm/libsofthsm2.so}
REPO=$(cd "$(dirname "$0")/.." && pwd)
WORK=${WORK:-$(mktemp -d)}
cd "$WORK"
step() { printf '\n== %s\n' "$*" >&2; }
SERVER=
# A SIGTERM that reaches the background job before it has become `sigil` (while it is still
# the shell's forked child, setting up its redirections) can be lost; after 10 s, SIGKILL.
stop() {
  if [ -z "$SERVER" ]; then return; fi
  kill "$SERVER" 2>/dev/null || true
  for _ in $(seq 100); do kill -0 "$SERVER" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$SERVER" 2>/dev/null || true
  wait "$SERVER" || true
}
trap stop EXIT

step "a SoftHSM configuration and token directory of our own, and an empty token in it"
mkdir -p tokens
printf 'directories.tokendir = %s/tokens\nobjectstore.backend = file\nlog.level = ERROR\n' \
  "$WORK" > softhsm2.conf
export SOFTHSM2_CONF=$WORK/softhsm2.conf
softhsm2-util --init-token --free --label sigil --so-pin 0000 --pin 1234
install -m 0600 /dev/null hsm.pin && echo 1234 > hsm.pin

step "sigil serve with key_store = pkcs11: its issuing CA key is made on the token"
cat > hsm.toml <<TOML
[server]
listen = "$LISTEN"
data_dir = "./data"
[pki]
key_store = "pkcs11"
[pki.pkcs11]
module = "$MODULE"
token_label = "sigil"
pin_file = "hsm.pin"
TOML
if [ -n "${DATABASE_URL:-}" ]; then export SIGIL__DATABASE__URL=$DATABASE_URL; fi
# Created here: the background job opens them only when it runs, maybe after the first look.
: > serve.out
: > serve.log
"$SIGIL" serve --config hsm.toml > serve.out 2> serve.log &
SERVER=$!
S=
for _ in $(seq 600); do
  S=$(sed -n 's|^listening on \(https://[^ ]*\)$|\1|p' serve.out)
  if [ -n "$S" ]; then break; fi
  kill -0 "$SERVER" 2>/dev/null || { cat serve.log >&2; exit 1; }
  sleep 0.1
done
[ -n "$S" ] || { echo "sigil serve did not start" >&2; cat serve.log >&2; exit 1; }
grep "PKCS#11 token logged in" serve.log >&2

K=$(cat data/admin.key)
# -f: fail on an HTTP error, so that every step is checked.
A=(-fsS --cacert data/tls/ca.pem -H "Authorization: Bearer $K" -H 'Content-Type: application/json')

step "a signer, and a signing credential whose key is made on the token"
curl "${A[@]}" -d '{"username": "alice", "password": "alice password"}' \
  "$S/api/v1/signers" > /dev/null
curl "${A[@]}" -d '{"signer": "alice", "key_algorithm": "p256", "pin": "123456", "scal": 2}' \
  "$S/api/v1/signing-credentials" > cred.json
jq -e '.key_store == "pkcs11"' cred.json

step "the keys are on the token, sensitive and never extractable"
pkcs11-tool --module "$MODULE" --token-label sigil --login --pin 1234 -O > objects.txt
cat objects.txt >&2
for key in sigil-cred- sigil-ca-; do
  grep -A6 "label: *$key" objects.txt | grep -q "never extractable"
done

step "sign a PDF with pyHanko over CSC v1, and validate it against Sigil's root"
python3 -c 'import pyhanko' 2>/dev/null || python3 -m pip install -q "pyhanko[async-http]==0.38.0"
jq -r '.chain[-1]' cred.json > root.pem
python3 "$REPO/tests/fixtures/pyhanko/csc_sign.py" "$S" data/tls/ca.pem root.pem alice \
  "alice password" "$(jq -r .credential_id cred.json)" 123456 signed.pdf
head -c 5 signed.pdf | grep -q '%PDF'

step "done"
