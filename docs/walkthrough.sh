#!/usr/bin/env bash
# The README's walk-through as one script: run it against a server started with
# `sigil serve` (defaults: https://127.0.0.1:8443, ./data). The test suite runs it too
# (tests/it/walkthrough.rs), so every step here works as written.
#
#   S=https://127.0.0.1:8443 DATA=./data docs/walkthrough.sh
set -euo pipefail
S=${S:-https://127.0.0.1:8443}
DATA=${DATA:-./data}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
KEY=$(cat "$DATA/admin.key")
# -f: fail on an HTTP error, so that every step is checked.
A=(-fsS --cacert "$DATA/tls/ca.pem" -H "Authorization: Bearer $KEY" -H 'content-type: application/json')
step() { printf '\n== %s\n' "$*" >&2; }

step "the server is ready"
curl "${A[@]}" "$S/health/ready"

step "an API key for an HR integration: audit read-only, 100 requests a minute, one network"
HR=$(curl "${A[@]}" -d '{"name":"hr-sync","description":"HR import","expires":"30d",
  "permissions":["audit:read"],"rate_limit":{"requests":100,"per":"minute"},
  "ip_whitelist":["127.0.0.1","10.0.0.0/8"]}' "$S/api/v1/api-keys")
HR_ID=$(jq -r .id <<<"$HR")
HR_KEY=$(jq -r .key <<<"$HR")        # the secret: shown once
curl "${A[@]}" "$S/api/v1/api-keys?status=active&limit=20" | jq -r '.items[].name'
curl -fsS --cacert "$DATA/tls/ca.pem" -H "X-API-Key: $HR_KEY" "$S/api/v1/audit?action=api_key.*" \
  | jq -r '.items[] | "\(.seq) \(.action) \(.object_id)"'

step "the audit trail verifies; a CSV export carries a detached signature"
curl "${A[@]}" "$S/api/v1/audit/verify" | jq -e .valid
curl "${A[@]}" -D "$WORK/headers.txt" -o "$WORK/audit.csv" "$S/api/v1/audit/export?format=csv"
grep -i '^sigil-signature:' "$WORK/headers.txt" | cut -d' ' -f2 | tr -d '\r' > "$WORK/audit.csv.sig"
test -s "$WORK/audit.csv.sig"
# Offline: sigil audit verify --file audit.csv --signature audit.csv.sig

step "rotate the key (the old secret works for an hour more), then revoke it"
curl "${A[@]}" -d '{"grace_period_seconds":3600}' "$S/api/v1/api-keys/$HR_ID/rotate" | jq -r .id
curl "${A[@]}" -X DELETE "$S/api/v1/api-keys/$HR_ID?reason=leaked" | jq -r .status

step "a certificate from a CSR made with openssl"
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$WORK/alice.key" \
  -subj /CN=alice -out "$WORK/alice.csr" 2>/dev/null
CERT=$(jq -n --rawfile csr "$WORK/alice.csr" \
  '{csr: $csr, profile: "tls-client", metadata: {owner: "alice"}}' |
  curl "${A[@]}" -d @- "$S/api/v1/certificates")
ID=$(jq -r .id <<<"$CERT")
curl "${A[@]}" "$S/api/v1/certificates?owner=alice&status=active" | jq -r '.items[].serial'
curl "${A[@]}" -X POST "$S/api/v1/certificates/$ID/suspend" | jq -r .status          # suspended
curl -fsS --cacert "$DATA/tls/ca.pem" "$S/crl/builtin.crl" | openssl crl -inform DER -noout -text \
  | grep -q "$(jq -r .serial <<<"$CERT" | tr a-f A-F)"
curl "${A[@]}" -X POST "$S/api/v1/certificates/$ID/reactivate" | jq -r .status       # active
curl "${A[@]}" -d '{"reason":"keyCompromise"}' "$S/api/v1/certificates/$ID/revoke" | jq -r .status

step "organization, division, office, a validated custom field and a person"
ORG=$(curl "${A[@]}" -d '{"name":"Acme"}' "$S/api/v1/organizations" | jq -r .id)
DIV=$(curl "${A[@]}" -d "{\"name\":\"North\",\"organization_id\":\"$ORG\"}" "$S/api/v1/divisions" | jq -r .id)
OFFICE=$(curl "${A[@]}" -d "{\"division_id\":\"$DIV\",\"code\":\"LJU-1\",\"name\":\"Ljubljana\",
  \"metadata\":{\"hours\":\"8-16\"}}" "$S/api/v1/offices" | jq -r .id)
curl "${A[@]}" -X PUT -d '{"type":"string","required":true,"pattern":"E[0-9]{5}"}' \
  "$S/api/v1/custom-fields/employee_no" > /dev/null
PERSON=$(curl "${A[@]}" -d "{\"office_id\":\"$OFFICE\",\"given_name\":\"Ana\",\"family_name\":\"Novak\",
  \"attributes\":{\"employee_no\":\"E12345\"}}" "$S/api/v1/people" | jq -r .id)

step "an enrolment request for a smart card, approved by a second operator"
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$WORK/ana.key" \
  -subj /CN=ana -out "$WORK/ana.csr" 2>/dev/null
REQ=$(jq -n --rawfile csr "$WORK/ana.csr" --arg p "$PERSON" \
  '{person_id: $p, device: {kind: "smart_card", serial: "SC-1"},
    certificates: [{profile: "tls-client", csr: $csr}]}' |
  curl "${A[@]}" -d @- "$S/api/v1/requests" | jq -r .id)
# Separation of duties: whoever requests may not approve, and an approval must come from an
# operator. Bob gets the request-approver role for Ana's office and a key bound to him.
BOB=$(curl "${A[@]}" -d "{\"username\":\"bob\",\"email\":\"bob@example.org\",
  \"roles\":[\"request-approver\",\"device-officer\"],\"offices\":[\"$OFFICE\"]}" \
  "$S/api/v1/operators" | jq -r .id)
BOB_KEY=$(curl "${A[@]}" -d "{\"name\":\"bob-laptop\",\"permissions\":[\"requests:read\",\"requests:approve\",\"devices:*\",\"device:*\"],
  \"operator_id\":\"$BOB\"}" "$S/api/v1/api-keys" | jq -r .key)
B=(-fsS --cacert "$DATA/tls/ca.pem" -H "Authorization: Bearer $BOB_KEY" -H 'content-type: application/json')
DONE=$(curl "${B[@]}" -X POST "$S/api/v1/requests/$REQ/approve")
DEV=$(jq -r .result.device_id <<<"$DONE")
curl "${B[@]}" -X POST "$S/api/v1/devices/$DEV/activate" | jq -r .status
curl "${B[@]}" -d '{"reason":"on leave"}' "$S/api/v1/devices/$DEV/suspend" | jq -r .status
curl "${A[@]}" "$S/api/v1/devices/$DEV/history" | jq -r '.items[].action'
curl "${A[@]}" "$S/api/v1/reports/expiring?days=30" > /dev/null

step "remote signing over the CSC API"
curl "${A[@]}" -d '{"username":"alice","password":"correct horse battery"}' "$S/api/v1/signers" > /dev/null
CRED=$(curl "${A[@]}" -d '{"signer":"alice","key_algorithm":"p256","pin":"123456","scal":2,"multisign":10}' \
  "$S/api/v1/signing-credentials" | jq -r .credential_id)
curl -fsS --cacert "$DATA/tls/ca.pem" -X POST "$S/csc/v1/info" | jq -r .name
TOKEN=$(curl -fsS --cacert "$DATA/tls/ca.pem" -u 'alice:correct horse battery' -X POST \
  "$S/csc/v1/auth/login" | jq -r .access_token)
C=(-fsS --cacert "$DATA/tls/ca.pem" -H "Authorization: Bearer $TOKEN" -H 'content-type: application/json')
HASH=$(printf 'document' | openssl dgst -sha256 -binary | base64)
SAD=$(curl "${C[@]}" -d "{\"credentialID\":\"$CRED\",\"numSignatures\":1,\"hash\":[\"$HASH\"],\"PIN\":\"123456\"}" \
  "$S/csc/v1/credentials/authorize" | jq -r .SAD)
curl "${C[@]}" -d "{\"credentialID\":\"$CRED\",\"SAD\":\"$SAD\",\"hash\":[\"$HASH\"],
  \"signAlgo\":\"1.2.840.10045.4.3.2\"}" "$S/csc/v1/signatures/signHash" | jq -e '.signatures | length == 1'

step "done"
