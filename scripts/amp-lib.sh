#!/usr/bin/env bash
# Shared by the amp-*.sh agent CLI (sourced, not run): agent directories, the provider's HTTP API,
# message signing and the errors of the brief's troubleshooting section.
#
# Layout (the brief's "Configuration Files"): ${AMP_DIR:-~/.agent-messaging}/agents/<name>/
#   config.json  name, address, agent_id, tenant, provider_url, endpoint, fingerprint, registered_at
#   api_key      the API key (0600)        keys/private.pem (0600), keys/public.pem
#   identity.json  the Agent Identity (AID) registration: id, status, user code, issuer (0600)
#   identity-token.json  the last AID access token, reused while it has more than a minute left (0600)
#
# Exit codes of every command:
#   0 ok · 1 refused by the provider or failed · 2 usage error · 3 provider not found (unreachable)
#   4 unauthorized (bad or revoked API key) · 5 not found (recipient, message) · 6 no such local agent
#   7 signature did not verify (amp-inbox.sh read, download) · 8 the AID registration awaits an admin's approval
#   9 polled too soon (amp-identity.sh status) · 10 an attachment is held for an admin's approval
#   (amp-send.sh --attach) · 11 a downloaded attachment does not match its size or digest, or is larger (removed)
# shellcheck shell=bash
# shellcheck disable=SC2034 # the variables set here are read by the scripts that source it

readonly AMP_EXIT_FAILED=1 AMP_EXIT_USAGE=2 AMP_EXIT_UNREACHABLE=3 AMP_EXIT_UNAUTHORIZED=4
readonly AMP_EXIT_NOT_FOUND=5 AMP_EXIT_NO_AGENT=6 AMP_EXIT_BAD_SIGNATURE=7 AMP_EXIT_PENDING=8
readonly AMP_EXIT_TOO_SOON=9 AMP_EXIT_HELD=10 AMP_EXIT_DIGEST_MISMATCH=11
readonly AMP_DEFAULT_PROVIDER="http://localhost:23000"

AMP_PROG=$(basename "$0")
AMP_JSON=0 # --json: data on stdout as JSON

# Human text goes to stderr; stdout is for data.
amp_say() { printf '%s\n' "$@" >&2; }
amp_die() {
  local code=$1
  shift
  printf '%s: %s\n' "$AMP_PROG" "$*" >&2
  exit "$code"
}
amp_usage_error() { amp_die "$AMP_EXIT_USAGE" "$* (see $AMP_PROG --help)"; }

amp_require_tools() {
  local t
  for t in curl jq openssl; do
    command -v "$t" >/dev/null 2>&1 || amp_die "$AMP_EXIT_FAILED" "$t is required (Debian: sudo apt-get install $t)"
  done
}

amp_root() { printf '%s' "${AMP_DIR:-$HOME/.agent-messaging}"; }

# A valid agent name is also a safe directory name.
amp_valid_name() { [[ $1 =~ ^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$ ]]; }

# The agent chosen with -a, else the first registered (earliest registered_at).
# Sets AGENT_NAME AGENT_DIR AGENT_ADDRESS AGENT_ENDPOINT PROVIDER_URL AGENT_TENANT AGENT_FINGERPRINT.
amp_load_agent() {
  local wanted=$1 root config
  root=$(amp_root)
  if [ -n "$wanted" ]; then
    config="$root/agents/$wanted/config.json"
    if [ ! -f "$config" ]; then
      local known
      known=$(amp_agent_names | paste -sd, - | sed 's/,/, /g')
      amp_die "$AMP_EXIT_NO_AGENT" "unknown agent '$wanted': no $config${known:+ (registered here: $known)}. Register it with: amp-register.sh --name $wanted"
    fi
  else
    wanted=$(amp_first_agent)
    [ -n "$wanted" ] || amp_die "$AMP_EXIT_NO_AGENT" "no agent registered in $root. Register one with: amp-register.sh --name my-agent"
    config="$root/agents/$wanted/config.json"
  fi
  AGENT_NAME=$wanted
  AGENT_DIR="$root/agents/$wanted"
  AGENT_ADDRESS=$(jq -er '.address' "$config") || amp_die "$AMP_EXIT_NO_AGENT" "$config has no address; register the agent again"
  PROVIDER_URL=$(jq -er '.provider_url' "$config") || amp_die "$AMP_EXIT_NO_AGENT" "$config has no provider_url; register the agent again"
  AGENT_ENDPOINT=$(jq -r --arg p "$PROVIDER_URL" '.endpoint // ($p + "/api/v1")' "$config")
  AGENT_TENANT=$(jq -r '.tenant // empty' "$config")
  AGENT_FINGERPRINT=$(jq -r '.fingerprint // empty' "$config")
  [ -r "$AGENT_DIR/api_key" ] || amp_die "$AMP_EXIT_NO_AGENT" "$AGENT_DIR/api_key is missing; register the agent again"
}

amp_agent_names() {
  local root c
  root=$(amp_root)
  for c in "$root"/agents/*/config.json; do
    [ -f "$c" ] && basename "$(dirname "$c")"
  done
  return 0
}

amp_first_agent() {
  local root c
  root=$(amp_root)
  # An if, not `[ -f ] &&`: with no agent the loop must not end on a failed test (set -e, pipefail).
  for c in "$root"/agents/*/config.json; do
    if [ -f "$c" ]; then jq -r --arg d "$(basename "$(dirname "$c")")" '[(.registered_at // ""), $d] | @tsv' "$c"; fi
  done | sort | awk -F '\t' 'NR == 1 { print $2 }'
}

# amp_http METHOD URL [BODY_FILE] [auth|apikey|upload] [CONTENT_TYPE]: the answer in AMP_BODY, the
# status in AMP_STATUS. `auth` sends the agent's API key as a Bearer token, `apikey` in X-Api-Key (the
# AID agent routes); either way the key goes in a header read from a file descriptor, never on a
# command line. `upload` (an attachment's signed upload URL) sends no key and no header but the
# Content-Type, with AMP_UPLOAD_TIMEOUT (default 600 s). The body is JSON unless CONTENT_TYPE says otherwise.
amp_http() {
  local method=$1 url=$2 body=${3:-} auth=${4:-} type=${5:-application/json} out="$AMP_TMP/answer" rc
  local limit=${AMP_TIMEOUT:-30}
  [ "$auth" != upload ] || limit=${AMP_UPLOAD_TIMEOUT:-600}
  local args=(-sS --max-time "$limit" -X "$method" -o "$out" -w '%{http_code}')
  # No `Expect: 100-continue` wait before a large upload's bytes.
  if [ "$auth" = upload ]; then args+=(-H 'Expect:'); else args+=(-H 'Accept: application/json'); fi
  # `@./NAME` for a relative path: a file named `-` or `@x` is that file, never stdin.
  if [ -n "$body" ]; then
    [[ $body == /* ]] || body="./$body"
    args+=(-H "Content-Type: $type" --data-binary "@$body")
  fi
  set +e
  if [ "$auth" = auth ]; then
    AMP_STATUS=$(curl "${args[@]}" -H @<(printf 'Authorization: Bearer %s\n' "$(<"$AGENT_DIR/api_key")") "$url" 2>"$out.err")
  elif [ "$auth" = apikey ]; then
    AMP_STATUS=$(curl "${args[@]}" -H @<(printf 'X-Api-Key: %s\n' "$(<"$AGENT_DIR/api_key")") "$url" 2>"$out.err")
  else
    AMP_STATUS=$(curl "${args[@]}" "$url" 2>"$out.err")
  fi
  rc=$?
  set -e
  AMP_BODY=$(cat "$out" 2>/dev/null || true)
  local err
  err=$(sed -E 's/^curl: \([0-9]+\) //' "$out.err" 2>/dev/null || true)
  rm -f "$out" "$out.err"
  if [ "$rc" -ne 0 ]; then
    local base=${url%%/api/*}
    base=${base%%/.well-known/*}
    # An AID route (amp-identity.sh): <base>/<tenant>/...
    if [ -n "${IDENTITY_BASE:-}" ] && [[ $url == "$IDENTITY_BASE"/* ]]; then base=${IDENTITY_BASE%/*}; fi
    base=${base%/*/oauth/*} # a token endpoint elsewhere: <base>/<tenant>/oauth/token
    amp_die "$AMP_EXIT_UNREACHABLE" "Provider not found: cannot reach $base ($err). Make sure the provider is running: curl $base/api/v1/info"
  fi
}

# The provider's error message, or the raw body.
amp_error_text() { jq -r '(.message // .error_description // .error // empty) | tostring' <<<"$AMP_BODY" 2>/dev/null || printf '%s' "$AMP_BODY"; }

# Map a failed answer to the brief's troubleshooting messages and an exit code.
amp_fail() {
  local what=$1 msg code
  msg=$(amp_error_text)
  code=$(jq -r '.error // empty' <<<"$AMP_BODY" 2>/dev/null || true)
  if [ "$AMP_STATUS" = 401 ] || { [ "$AMP_STATUS" = 403 ] && [[ $code =~ ^(unauthorized|key_revoked|invalid_api_key)$ ]]; }; then
    amp_die "$AMP_EXIT_UNAUTHORIZED" "Unauthorized: the provider refused the API key of agent '$AGENT_NAME' ($msg). Check that your API key is correct: cat $AGENT_DIR/api_key"
  fi
  case "$AMP_STATUS" in
    404) amp_die "$AMP_EXIT_NOT_FOUND" "$what: not found ($msg)" ;;
    *) amp_die "$AMP_EXIT_FAILED" "$what refused (HTTP $AMP_STATUS${code:+ $code}): $msg" ;;
  esac
}

amp_ok() { [[ $AMP_STATUS =~ ^2 ]]; }

# Canonical JSON (spec §10) as the provider writes it: JSON.stringify's strings and numbers, object
# members sorted by code point (jq compares UTF-8 bytes: the same order), compact. jq's own -cS
# output differs in two places, so the text is built here: jq escapes DEL (U+007F), which
# JSON.stringify writes raw, and jq prints numbers as 1e+20 or 1e-07 where JSON.stringify prints
# 100000000000000000000 and 1e-7 (the digits are the same shortest round-trip digits; only the
# layout is redone, by ECMAScript's Number::toString rules).
# shellcheck disable=SC2016 # a jq program: its $ names are jq's
readonly AMP_JQ_CANON='
def amp_cstr: "\"" + (split("\u007f") | map(tojson | .[1:-1]) | join("\u007f")) + "\"";
def amp_cnum:
  if . == 0 then "0"
  else tostring
    | capture("^(?<sign>-?)(?<int>[0-9]+)([.](?<frac>[0-9]+))?(e(?<exp>[-+]?[0-9]+))?$") as $m
    | ($m.int + ($m.frac // "")) as $all
    | ($all | sub("^0+"; "")) as $lead
    | ($lead | sub("0+$"; "")) as $d
    | ($d | length) as $k
    | (($m.int | length) + (($m.exp // "0") | tonumber) - (($all | length) - ($lead | length))) as $n
    | $m.sign + (
        if $k <= $n and $n <= 21 then $d + ("0" * ($n - $k))
        elif 0 < $n and $n <= 21 then $d[0:$n] + "." + $d[$n:]
        elif -6 < $n and $n <= 0 then "0." + ("0" * (-$n)) + $d
        else $d[0:1] + (if $k > 1 then "." + $d[1:] else "" end)
          + "e" + (if $n > 0 then "+" else "-" end) + (($n - 1) | fabs | tostring)
        end)
  end;
def amp_canon:
  if type == "object" then "{" + (to_entries | sort_by(.key) | map((.key | amp_cstr) + ":" + (.value | amp_canon)) | join(",")) + "}"
  elif type == "array" then "[" + (map(amp_canon) | join(",")) + "]"
  elif type == "string" then amp_cstr
  elif type == "number" then amp_cnum
  else tojson end;
'

# The payload hash: padded base64 of SHA-256 over the canonical JSON read from stdin.
amp_payload_hash() { jq -j "$AMP_JQ_CANON amp_canon" | openssl dgst -sha256 -binary | base64 | tr -d '\n'; }

# amp_sign_fields FROM TO SUBJECT PRIORITY IN_REPLY_TO PAYLOAD_JSON -> base64 Ed25519 signature
# over from|to|subject|priority|in_reply_to|payload_hash, with the agent's private key.
amp_sign_fields() {
  local hash
  hash=$(printf '%s' "$6" | amp_payload_hash)
  printf '%s' "$1|$2|$3|$4|$5|$hash" >"$AMP_TMP/signed.txt"
  openssl pkeyutl -sign -inkey "$AGENT_DIR/keys/private.pem" -rawin -in "$AMP_TMP/signed.txt" | base64 | tr -d '\n'
}

# amp_verify_message PUBLIC_PEM MESSAGE_JSON: does the envelope's signature verify with the key?
# jq writes the signed fields straight to a file, so newlines and trailing blanks in a subject
# reach openssl byte for byte (priority "" or absent is "normal", in_reply_to absent is "").
amp_verify_message() {
  local dir="$AMP_TMP/verify" hash
  mkdir -p "$dir"
  printf '%s\n' "$1" >"$dir/public.pem"
  jq -r '.envelope.signature // ""' <<<"$2" | tr '_-' '/+' | base64 -d >"$dir/sig.bin" 2>/dev/null || return 1
  hash=$(jq '.payload' <<<"$2" | amp_payload_hash)
  jq -j --arg hash "$hash" '.envelope
    | [.from, .to, .subject, (if (.priority // "") == "" then "normal" else .priority end), (.in_reply_to // ""), $hash]
    | map(tostring) | join("|")' <<<"$2" >"$dir/msg.txt"
  openssl pkeyutl -verify -pubin -inkey "$dir/public.pem" -rawin -in "$dir/msg.txt" -sigfile "$dir/sig.bin" >/dev/null 2>&1
}

# amp_signature_status MESSAGE_JSON: sets AMP_SIG_STATUS to `unsigned` (no envelope.signature),
# `verified` (it verifies with the sender's public key) or `unverified`, and AMP_SIG_KEY_SOURCE to
# where the key came from: `provider` (the provider resolves the sender: an agent registered there)
# or `message` (a sender on another provider or mesh host, which our provider cannot resolve: the
# message's sender_public_key, which our provider checked on receipt, federation §19.1: the
# sender's key at its home provider; mesh §19.2: the key the authenticated peer host named), or
# `none` (neither: nothing to verify with).
amp_signature_status() {
  local from key
  AMP_SIG_STATUS=unsigned AMP_SIG_KEY_SOURCE=none
  [ -n "$(jq -r '.envelope.signature // ""' <<<"$1")" ] || return 0
  AMP_SIG_STATUS=unverified
  from=$(jq -r '.envelope.from // ""' <<<"$1")
  amp_http GET "$AGENT_ENDPOINT/agents/resolve/$(jq -rn --arg a "$from" '$a | @uri')" "" auth
  if amp_ok && key=$(jq -er '.public_key' <<<"$AMP_BODY"); then
    AMP_SIG_KEY_SOURCE=provider
  elif [[ $AMP_STATUS =~ ^(404|422)$ ]] && key=$(amp_message_sender_key "$1"); then
    AMP_SIG_KEY_SOURCE=message
  else
    return 0
  fi
  if amp_verify_message "$key" "$1"; then AMP_SIG_STATUS=verified; fi
  return 0
}

# amp_message_sender_key MESSAGE_JSON: the message's sender_public_key as a PEM, when our provider
# marked the message signature_verified (it checked that key on receipt); fails otherwise.
amp_message_sender_key() {
  local key der escaped="" i
  jq -e '.security.signature_verified == true' <<<"$1" >/dev/null 2>&1 || return 1
  key=$(jq -r '.sender_public_key // "" | tostring' <<<"$1")
  if [[ $key =~ ^[0-9a-fA-F]{64}$ ]]; then
    # The raw 32-byte Ed25519 key, as an SPKI PEM: the fixed 12-byte DER prefix, then the key.
    der="302a300506032b6570032100$key"
    for ((i = 0; i < ${#der}; i += 2)); do escaped+="\\x${der:i:2}"; done
    printf -- '-----BEGIN PUBLIC KEY-----\n%s\n-----END PUBLIC KEY-----\n' "$(printf '%b' "$escaped" | base64 | tr -d '\n')"
  elif [[ $key == "-----BEGIN PUBLIC KEY-----"* ]]; then
    printf '%s\n' "$key"
  else
    return 1
  fi
}

# amp_require_signature MESSAGE_JSON: exit 7 unless the message is unsigned or its signature verifies
# (before trusting what payload.attachments says the sender signed).
amp_require_signature() {
  amp_signature_status "$1"
  [ "$AMP_SIG_STATUS" != unverified ] || amp_die "$AMP_EXIT_BAD_SIGNATURE" \
    "message $(jq -r '.id // "?"' <<<"$1") from $(jq -r '.envelope.from // "?"' <<<"$1"): its signature does not verify with the key the provider has for the sender; nothing was downloaded"
}

# Scratch files of this run, removed on exit (and a partial download, amp_download_attachment).
AMP_TMP=$(mktemp -d)
AMP_PARTIAL=""
amp_cleanup() {
  rm -rf "$AMP_TMP"
  if [ -n "$AMP_PARTIAL" ]; then rm -f "$AMP_PARTIAL"; fi
}
trap amp_cleanup EXIT

# A message id as the provider makes them (spec §7); anything else is refused before any request.
amp_valid_id() { [[ $1 =~ ^msg[_-][0-9]+[_-][a-zA-Z0-9]+$ ]]; }

# amp_send TO SUBJECT MESSAGE PRIORITY TYPE IN_REPLY_TO [THREAD_ID]: sign and route one message as
# the loaded agent; prints the id and status (delivered, queued) or fails with the provider's reason.
# With amp_attachments_json (a JSON array, amp_attach_files) the payload carries them as
# payload.attachments, covered by the signature like the rest of the payload.
amp_send() {
  local to=$1 subject=$2 message=$3 priority=$4 type=$5 in_reply_to=$6 thread_id=${7:-} payload signature
  payload=$(jq -cn --arg type "$type" --arg message "$message" --argjson att "${amp_attachments_json:-null}" \
    '{type: $type, message: $message} + (if $att == null then {} else {attachments: $att} end)')
  signature=$(amp_sign_fields "$AGENT_ADDRESS" "$to" "$subject" "$priority" "$in_reply_to" "$payload")
  jq -n --arg to "$to" --arg subject "$subject" --arg priority "$priority" --argjson payload "$payload" \
    --arg signature "$signature" --arg in_reply_to "$in_reply_to" --arg thread_id "$thread_id" \
    '{to: $to, subject: $subject, priority: $priority, payload: $payload, signature: $signature}
     + (if $in_reply_to == "" then {} else {in_reply_to: $in_reply_to} end)
     + (if $thread_id == "" then {} else {thread_id: $thread_id} end)' >"$AMP_TMP/route.json"
  amp_http POST "$AGENT_ENDPOINT/route" "$AMP_TMP/route.json" auth
  if ! amp_ok; then
    amp_route_attachment_error "sending to $to"
    if [ "$AMP_STATUS" = 404 ]; then
      amp_die "$AMP_EXIT_NOT_FOUND" "failed: unknown recipient '$to' ($(amp_error_text)). Check the address: <agent-name>@<tenant>.<domain>"
    fi
    [ "$AMP_STATUS" != 403 ] || amp_refused_while_pending "$(amp_error_text)"
    amp_fail "sending to $to"
  fi
  amp_attachments_sent
  if [ "$AMP_JSON" = 1 ]; then
    printf '%s\n' "$AMP_BODY"
  else
    amp_say "$(jq -r '"\(.id) \(.status)" + (if .status == "queued" then " (in the relay queue: the recipient is offline, or on another host or provider and gets it once reachable)" elif .method == "mesh" then " (forwarded to mesh host \(.remote_host))" elif .status == "delivered" then " (recipient online)" else "" end)' <<<"$AMP_BODY")"
    if jq -e '(.warnings // []) | index("attachment_suspicious")' <<<"$AMP_BODY" >/dev/null 2>&1; then
      amp_say "warning: the message carries a suspicious attachment that an admin approved (attachment_suspicious)"
    fi
  fi
}

# A 403 on sending: when the agent is `pending` (approval mode), say so and how to get approved.
amp_refused_while_pending() {
  local text=$1 saved_body=$AMP_BODY saved_status=$AMP_STATUS
  amp_http GET "$AGENT_ENDPOINT/agents/me" "" auth
  if amp_ok && [ "$(jq -r '.status // empty' <<<"$AMP_BODY")" = pending ]; then
    amp_die "$AMP_EXIT_PENDING" "refused: $AGENT_ADDRESS awaits an admin's approval of its identity registration ($text). Check with: amp-identity.sh${AGENT_NAME:+ -a $AGENT_NAME} status (file it with: amp-identity.sh request)"
  fi
  AMP_BODY=$saved_body AMP_STATUS=$saved_status
}

# amp_find_message ID: the message as JSON, from the pending queue (first 100) or the copy that
# `amp-inbox.sh read` keeps in the agent's messages/ directory; empty when neither has it.
amp_find_message() {
  local id=$1
  amp_http GET "$AGENT_ENDPOINT/messages/pending?limit=100" "" auth
  amp_ok || amp_fail "listing messages"
  local found
  found=$(jq -c --arg id "$id" '[.messages[] | select(.id == $id)][0] // empty' <<<"$AMP_BODY")
  if [ -z "$found" ] && [ -f "$AGENT_DIR/messages/$id.json" ]; then found=$(jq -c . "$AGENT_DIR/messages/$id.json"); fi
  printf '%s' "$found"
}

# ---- Agent Identity (AID, spec agent-identity.md): registration request, status polls, tokens ----

readonly AMP_AID_GRANT='urn:aid:agent-identity'

amp_identity_file() { printf '%s' "$AGENT_DIR/identity.json"; }

# Write stdin to FILE, readable only by us, replacing it whole.
amp_write_private() { (umask 077 && cat >"$1.tmp" && mv -f "$1.tmp" "$1"); }

# base64url without padding, of stdin.
amp_b64url() { base64 | tr -d '\n=' | tr '+/' '-_'; }

# amp_aid_init: IDENTITY_BASE, the AID routes of the agent's tenant under the provider's announced base
# (its AMP endpoint without /api/v1), where the registration answer sent the agent.
amp_aid_init() {
  [ -n "$AGENT_TENANT" ] || amp_die "$AMP_EXIT_NO_AGENT" "$AGENT_DIR/config.json has no tenant; register the agent again"
  [ -n "$AGENT_FINGERPRINT" ] || amp_die "$AMP_EXIT_NO_AGENT" "$AGENT_DIR/config.json has no fingerprint; register the agent again"
  local base=${AGENT_ENDPOINT%/api/v1}
  [ "$base" != "$AGENT_ENDPOINT" ] || base=$PROVIDER_URL
  IDENTITY_BASE="$base/$AGENT_TENANT"
}

# amp_aid_proof PURPOSE ISSUER OUT [LAST_TS]: writes base64url(Ed25519(PURPOSE\n<ts>\nISSUER) || <ts>)
# to OUT, signed with the agent's key: the token proof (PURPOSE aid-token-exchange, spec §6.1) or the
# status proof (aid-registration-status, §6.2). Sets AMP_PROOF_TS. Ed25519 is deterministic, so a
# second proof in the same second is the same proof, which the provider refuses as a replay: when
# LAST_TS (the previous proof's) is this second, it waits for the next one.
amp_aid_proof() {
  AMP_PROOF_TS=$(date +%s)
  if [ "${4:-}" = "$AMP_PROOF_TS" ]; then
    sleep 1
    AMP_PROOF_TS=$(date +%s)
  fi
  printf '%s\n%s\n%s' "$1" "$AMP_PROOF_TS" "$2" >"$AMP_TMP/proof.txt"
  openssl pkeyutl -sign -inkey "$AGENT_DIR/keys/private.pem" -rawin -in "$AMP_TMP/proof.txt" -out "$AMP_TMP/proof.sig" ||
    amp_die "$AMP_EXIT_FAILED" "openssl could not sign with $AGENT_DIR/keys/private.pem"
  [ "$(wc -c <"$AMP_TMP/proof.sig")" -eq 64 ] || amp_die "$AMP_EXIT_FAILED" "$AGENT_DIR/keys/private.pem is not an Ed25519 key"
  { cat "$AMP_TMP/proof.sig"; printf '%s' "$AMP_PROOF_TS"; } | amp_b64url >"$3"
}

# amp_aid_recorded FIELD: a field of identity.json, or empty.
amp_aid_recorded() {
  local file
  file=$(amp_identity_file)
  if [ -f "$file" ]; then jq -r --arg f "$1" '.[$f] // empty' "$file"; fi
}

# amp_aid_resolve: AID_ISSUER (what proofs name, as the provider announced it; never guessed from
# our own URL) and AID_TOKEN_URL, from identity.json or else the tenant's discovery document.
amp_aid_resolve() {
  AID_ISSUER=$(amp_aid_recorded issuer)
  AID_TOKEN_URL=$(amp_aid_recorded token_endpoint)
  if [ -z "$AID_ISSUER" ] || [ -z "$AID_TOKEN_URL" ]; then
    amp_http GET "$IDENTITY_BASE/.well-known/oauth-authorization-server"
    amp_ok || amp_die "$AMP_EXIT_FAILED" "the provider has no Agent Identity service for tenant $AGENT_TENANT (HTTP $AMP_STATUS): $(amp_error_text)"
    [ -n "$AID_ISSUER" ] || AID_ISSUER=$(jq -r '.issuer // empty' <<<"$AMP_BODY")
    [ -n "$AID_TOKEN_URL" ] || AID_TOKEN_URL=$(jq -r '.token_endpoint // empty' <<<"$AMP_BODY")
  fi
  [ -n "$AID_ISSUER" ] || amp_die "$AMP_EXIT_FAILED" "the provider announced no issuer for tenant $AGENT_TENANT"
  [ -n "$AID_TOKEN_URL" ] || AID_TOKEN_URL="$IDENTITY_BASE/oauth/token"
}

# amp_aid_request [DESCRIPTION]: file the AID registration request (spec T1, POST
# <tenant>/agent_registrations/request, X-Api-Key) for the loaded agent's own key and address; on
# 202 the answer is kept in identity.json. Returns 1 on a refusal (the answer in AMP_BODY/AMP_STATUS).
amp_aid_request() {
  jq -n --arg name "$AGENT_NAME" --arg address "$AGENT_ADDRESS" --arg fp "$AGENT_FINGERPRINT" \
    --rawfile key "$AGENT_DIR/keys/public.pem" --arg description "${1:-}" \
    '{agent_registration: ({name: $name, address: $address, fingerprint: $fp, public_key: $key, key_algorithm: "Ed25519"}
      + (if $description == "" then {} else {description: $description} end))}' >"$AMP_TMP/aid-request.json"
  amp_http POST "$IDENTITY_BASE/agent_registrations/request" "$AMP_TMP/aid-request.json" apikey
  amp_ok || return 1
  jq --arg tenant "$AGENT_TENANT" --argjson now "$(date +%s)" '(.data.attributes // {}) as $a | {
      registration_id: .data.id, tenant: $tenant, address: $a.address, status: ($a.status // "pending"),
      user_code: (.user_code // $a.user_code), authorization_url: (.authorization_url // $a.authorization_url),
      code_expires_at: ($now + (.expires_in // $a.expires_in // 86400) | todate),
      interval: (.interval // $a.interval // 5),
      token_endpoint: (.token_endpoint // $a.token_endpoint), issuer: $a.oidc_issuer,
      requested_at: ($now | todate)}' <<<"$AMP_BODY" | amp_write_private "$(amp_identity_file)"
}

# What the agent's human tells the admin after a request: the user code and the admin's commands.
amp_aid_tell_admin() {
  local id code until
  id=$(amp_aid_recorded registration_id)
  code=$(amp_aid_recorded user_code)
  until=$(amp_aid_recorded code_expires_at)
  amp_say "Identity registration $id of $AGENT_ADDRESS: pending." \
    "An admin must approve it before this agent can send messages or get tokens." \
    "Ask an admin of tenant '$AGENT_TENANT' to approve user code $code (valid until $until):" \
    "  npx amp-relay admin registrations approve $id --tenant $AGENT_TENANT" \
    "  (or POST $IDENTITY_BASE/agent_registrations/$id/approve with an admin token)" \
    "Then check with: amp-identity.sh${AGENT_NAME:+ -a $AGENT_NAME} status"
}

# ---- Attachments (spec §22): upload, wait for the scan, download with the digest checked ----

readonly AMP_MAX_ATTACHMENTS=10
AMP_ATTACH_USED=()

# An attachment id as the provider makes them (att_<unix s>_<hex>); anything else is refused.
amp_valid_att_id() { [[ $1 =~ ^att[_-][0-9]+[_-][a-zA-Z0-9]+$ ]]; }

# amp_safe_filename NAME FALLBACK: NAME with every byte but [A-Za-z0-9._-] made `_`, a leading dot
# made `_` (no hidden files, never . or ..), at most 255 bytes; FALLBACK when NAME is empty.
amp_safe_filename() {
  local n
  n=$(printf '%s' "$1" | LC_ALL=C tr -c 'A-Za-z0-9._-' '_')
  [ "${n:0:1}" != . ] || n="_${n:1}"
  n=${n:0:255}
  printf '%s' "${n:-$2}"
}

# amp_mime_type FILE: `file --mime-type` when installed and sure, else by extension, else
# application/octet-stream.
amp_mime_type() {
  local t=""
  if command -v file >/dev/null 2>&1; then t=$(file --mime-type -b -- "$1" 2>/dev/null || true); fi
  if [[ $t =~ ^[a-z]+/[A-Za-z0-9.+-]+$ ]] && [[ $t != inode/* ]] && [ "$t" != application/octet-stream ]; then
    printf '%s' "$t"
    return
  fi
  local ext=${1##*/}
  ext=${ext##*.}
  case "${ext,,}" in
    txt | log) t=text/plain ;; md) t=text/markdown ;; csv) t=text/csv ;; html | htm) t=text/html ;;
    json) t=application/json ;; xml) t=application/xml ;; yaml | yml) t=application/yaml ;;
    pdf) t=application/pdf ;; zip) t=application/zip ;; gz) t=application/gzip ;; tar) t=application/x-tar ;;
    png) t=image/png ;; jpg | jpeg) t=image/jpeg ;; gif) t=image/gif ;; webp) t=image/webp ;; svg) t=image/svg+xml ;;
    *) t=application/octet-stream ;;
  esac
  printf '%s' "$t"
}

# AMP_SCAN_TIMEOUT: how long to wait for a scan, in whole seconds (default 60, at most 3600).
amp_scan_timeout() {
  local s=${AMP_SCAN_TIMEOUT:-60}
  [[ $s =~ ^[0-9]{1,4}$ ]] || amp_usage_error "AMP_SCAN_TIMEOUT must be whole seconds from 0 to 3600 (got '$s')"
  [ $((10#$s)) -le 3600 ] || amp_usage_error "AMP_SCAN_TIMEOUT must be whole seconds from 0 to 3600 (got '$s')"
  printf '%s' $((10#$s))
}

# Uploads that are held (suspicious, awaiting an admin) or still being scanned are remembered in
# <agent>/attachments/<sha256 hex>.json, so that the same command run again uses them, not a new upload.
amp_attach_cache() { printf '%s' "$AGENT_DIR/attachments/$1.json"; }

# amp_attach_files FILE...: upload each file, wait for its scan, and set amp_attachments_json to the
# payload.attachments entries. Exits 1 on a rejected file, 10 when any is held for approval.
amp_attach_files() {
  [ $# -le "$AMP_MAX_ATTACHMENTS" ] || amp_usage_error "at most $AMP_MAX_ATTACHMENTS attachments per message (got $#)"
  local f held=()
  AMP_ATTACH_USED=()
  : >"$AMP_TMP/attachments.jsonl"
  for f in "$@"; do
    amp_attach_one "$f"
    if [ -n "$AMP_ATTACH_HELD" ]; then held+=("$AMP_ATTACH_HELD"); fi
  done
  if [ ${#held[@]} -gt 0 ]; then
    amp_say "${held[@]}" \
      "Nothing was sent. An admin of the provider decides; on the provider's machine:" \
      "  npx amp-relay admin attachments list --approval pending" \
      "  npx amp-relay admin attachments approve <id>     (or: reject <id> --reason TEXT)" \
      "Once approved, run the same command again: it uses the approved upload."
    exit "$AMP_EXIT_HELD"
  fi
  amp_attachments_json=$(jq -cs . "$AMP_TMP/attachments.jsonl")
}

# amp_attach_one FILE: one file's upload (or its remembered one) and scan; its entry goes to
# $AMP_TMP/attachments.jsonl, or AMP_ATTACH_HELD says why it is held.
amp_attach_one() {
  local file=$1 path=$1 name type size hex cache id=""
  AMP_ATTACH_HELD=""
  [[ -f $file && -r $file ]] || amp_usage_error "cannot read attachment '$file' (not a readable file)"
  # `./NAME` for a relative path: `-` is a file named so for stat, file and curl, never stdin.
  [[ $path == /* ]] || path="./$path"
  name=$(amp_safe_filename "${file##*/}" attachment)
  type=$(amp_mime_type "$path")
  size=$(stat -L -c %s -- "$path")
  hex=$(sha256sum <"$path" | cut -d ' ' -f 1)
  cache=$(amp_attach_cache "$hex")
  if [ -f "$cache" ] && jq -e --arg n "$name" --arg t "$type" '.filename == $n and .content_type == $t' "$cache" >/dev/null 2>&1; then
    id=$(jq -r '.id // empty' "$cache")
    if amp_valid_att_id "$id"; then
      amp_http GET "$AGENT_ENDPOINT/attachments/$id" "" auth
      if ! amp_ok; then id=""; fi # gone (expired, removed): a new upload
    else
      id=""
    fi
    [ -n "$id" ] || rm -f "$cache"
  fi
  if [ -z "$id" ]; then
    amp_upload_attachment "$path" "$name" "$type" "$size" "sha256:$hex"
    id=$AMP_ATT_ID
  fi
  amp_wait_scan "$id" "$file" || {
    amp_attach_remember "$cache" "$id" "$name" "$type"
    amp_die "$AMP_EXIT_FAILED" "attachment $file ($id) is still being scanned after $(amp_scan_timeout) s; nothing was sent. Run the same command again later (it waits for this upload), or raise AMP_SCAN_TIMEOUT"
  }
  amp_attach_judge "$file" "$id" "$cache" "$name" "$type"
}

# amp_attach_judge FILE ID CACHE NAME TYPE: act on the scanned status in AMP_BODY.
amp_attach_judge() {
  local file=$1 id=$2 cache=$3 status approval why
  status=$(jq -r '.scan_status // "pending"' <<<"$AMP_BODY")
  approval=$(jq -r '.approval.status // empty' <<<"$AMP_BODY")
  why=$(jq -r '[.approval.reason, ((.scan_reasons // []) | if type == "array" then map(tostring) | join(", ") else tostring end)]
    | map(select(type == "string" and . != "")) | first // empty' <<<"$AMP_BODY")
  case "$status:$approval" in
    clean:* | basic_clean:* | unscanned:* | suspicious:approved) ;;
    suspicious:rejected)
      rm -f "$cache"
      amp_die "$AMP_EXIT_FAILED" "attachment $file ($id) was rejected by an admin${why:+ ($why)}; nothing was sent" ;;
    suspicious:*)
      amp_attach_remember "$cache" "$id" "$4" "$5"
      AMP_ATTACH_HELD="attachment $file ($id) is suspicious and held for human approval; an admin runs \`npx amp-relay admin attachments approve $id\`.${why:+ The scan found: $why.}"
      return ;;
    rejected:*)
      rm -f "$cache"
      amp_die "$AMP_EXIT_FAILED" "attachment $file ($id) was rejected by the provider's scan${why:+ ($why)}; nothing was sent" ;;
    *) amp_die "$AMP_EXIT_FAILED" "attachment $file ($id): unexpected scan status '$status'; nothing was sent" ;;
  esac
  [ "$status" != unscanned ] || amp_say "warning: attachment $file ($id) was not scanned by the provider"
  [ ! -f "$cache" ] || AMP_ATTACH_USED+=("$cache")
  jq -c '{id: .attachment_id, filename, content_type, size, digest, scan_status} + (if .url then {url} else {} end)' \
    <<<"$AMP_BODY" >>"$AMP_TMP/attachments.jsonl"
}

amp_attach_remember() {
  mkdir -p "$AGENT_DIR/attachments"
  chmod 700 "$AGENT_DIR/attachments"
  jq -n --arg id "$2" --arg n "$3" --arg t "$4" '{id: $id, filename: $n, content_type: $t}' | amp_write_private "$1"
}

# After a send: the remembered uploads it carried are used up.
amp_attachments_sent() {
  local c
  for c in "${AMP_ATTACH_USED[@]}"; do rm -f "$c"; done
  return 0
}

# amp_upload_attachment FILE NAME TYPE SIZE DIGEST: upload init, the PUT of the bytes to the signed
# upload URL (no API key: the URL is the credential), confirm. Sets AMP_ATT_ID.
amp_upload_attachment() {
  local file=$1 url
  jq -n --arg n "$2" --arg t "$3" --argjson s "$4" --arg d "$5" \
    '{filename: $n, content_type: $t, size: $s, digest: $d}' >"$AMP_TMP/upload.json"
  amp_http POST "$AGENT_ENDPOINT/attachments/upload" "$AMP_TMP/upload.json" auth
  amp_ok || amp_fail "uploading $file"
  AMP_ATT_ID=$(jq -r '.attachment_id // empty' <<<"$AMP_BODY")
  url=$(jq -r '.upload_url // empty' <<<"$AMP_BODY")
  amp_valid_att_id "$AMP_ATT_ID" || amp_die "$AMP_EXIT_FAILED" "uploading $file: the provider answered no valid attachment_id"
  [[ $url =~ ^https?:// ]] || amp_die "$AMP_EXIT_FAILED" "uploading $file: the provider answered no http(s) upload_url"
  amp_http PUT "$url" "$file" upload "$3"
  amp_ok || amp_fail "uploading the bytes of $file"
  printf '{}' >"$AMP_TMP/confirm.json"
  amp_http POST "$AGENT_ENDPOINT/attachments/$AMP_ATT_ID/confirm" "$AMP_TMP/confirm.json" auth
  amp_ok || amp_fail "confirming the upload of $file"
}

# amp_wait_scan ID FILE: poll GET /attachments/ID every second until its scan_status is not
# `pending` (the status document then in AMP_BODY); returns 1 when it still is after
# AMP_SCAN_TIMEOUT seconds (as many one-second waits, so never less; each request is bounded too).
amp_wait_scan() {
  local limit i
  limit=$(amp_scan_timeout)
  for ((i = 0; ; i++)); do
    amp_http GET "$AGENT_ENDPOINT/attachments/$1" "" auth
    amp_ok || amp_fail "checking the scan of attachment $2 ($1)"
    [ "$(jq -r '.scan_status // "pending"' <<<"$AMP_BODY")" = pending ] || return 0
    [ "$i" -lt "$limit" ] || return 1
    sleep 1
  done
}

# amp_route_attachment_error WHAT: a route refused for an attachment (not for its recipient); the
# held case has its own exit code and says what to do.
amp_route_attachment_error() {
  local code
  code=$(jq -r '.error // empty' <<<"$AMP_BODY" 2>/dev/null || true)
  case "$code" in
    attachment_held) amp_die "$AMP_EXIT_HELD" "refused: an attachment is held for human approval ($(amp_error_text)); an admin runs \`npx amp-relay admin attachments approve <id>\`" ;;
    attachment_* | attachments_* | too_many_attachments) amp_fail "$1" ;;
  esac
}

# amp_attachment_records MESSAGE_JSON: its attachments as [{id, filename, size, digest, url,
# scan_status, signed_size, signed_digest}]: the provider's record (with the download url), and what
# the sender signed in payload.attachments for the same id.
amp_attachment_records() {
  jq -c '[(.payload.attachments // []) | if type == "array" then .[] else empty end | select(type == "object")] as $signed
    | [(.attachments // $signed) | if type == "array" then .[] else empty end | select(type == "object")
       | (.id // .attachment_id) as $id
       | ([$signed[] | select((.id // .attachment_id) == $id)][0] // {}) as $s
       | {id: $id, filename, content_type, size, digest, url, scan_status, signed_size: $s.size, signed_digest: $s.digest}]' <<<"$1"
}

# amp_find_attachment ID: [record] of one attachment, from the message carrying it (pending, or
# kept by `amp-inbox.sh read`), else from GET /attachments/ID (the provider's status document).
amp_find_attachment() {
  local id=$1 f found
  amp_http GET "$AGENT_ENDPOINT/messages/pending?limit=100" "" auth
  amp_ok || amp_fail "listing messages"
  found=$(jq -c --arg id "$id" '[.messages[] | select(any(.attachments // .payload.attachments // [] | if type == "array" then .[] else empty end;
    type == "object" and (.id // .attachment_id) == $id))][0] // empty' <<<"$AMP_BODY")
  if [ -z "$found" ] && [ -d "$AGENT_DIR/messages" ]; then
    for f in "$AGENT_DIR"/messages/*.json; do
      [ -f "$f" ] || continue
      if jq -e --arg id "$id" 'any(.attachments // .payload.attachments // [] | if type == "array" then .[] else empty end;
        type == "object" and (.id // .attachment_id) == $id)' "$f" >/dev/null 2>&1; then
        found=$(jq -c . "$f")
        break
      fi
    done
  fi
  if [ -n "$found" ]; then
    amp_require_signature "$found"
    amp_attachment_records "$found" | jq -c --arg id "$id" 'map(select(.id == $id))'
    return
  fi
  amp_http GET "$AGENT_ENDPOINT/attachments/$id" "" auth
  amp_ok || amp_fail "attachment $id"
  jq -c '[{id: .attachment_id, filename, content_type, size, digest, url, scan_status}]' <<<"$AMP_BODY"
}

# amp_free_path DIR NAME: DIR/NAME, or NAME_1, NAME_2 ... before the extension (the stem shortened
# so that the name stays within 255 bytes), whichever is no entry at all yet: an existing symlink,
# fifo or device counts as taken and is never opened. The path is created empty (noclobber on a
# name that does not exist: never someone else's file) and printed.
amp_free_path() {
  local dir=$1 stem=$2 ext="" i name path
  if [[ $2 =~ ^(.+)(\.[A-Za-z0-9]{1,16})$ ]]; then stem=${BASH_REMATCH[1]} ext=${BASH_REMATCH[2]}; fi
  for i in $(seq 0 1000); do
    name=$2
    [ "$i" = 0 ] || name="${stem:0:$((255 - ${#ext} - ${#i} - 1))}_$i$ext"
    path="$dir/$name"
    if [ -e "$path" ] || [ -L "$path" ]; then continue; fi
    if (set -C && : >"$path") 2>/dev/null; then
      printf '%s' "$path"
      return 0
    fi
  done
  amp_die "$AMP_EXIT_FAILED" "no free file name for $2 in $dir (tried ${stem}_1 to _1000)"
}

# amp_fetch_capped URL SIZE FILE [auth]: GET URL (no redirects followed, http(s) only) writing at
# most SIZE bytes into FILE; up to 64 KiB more (an error answer, or a body larger than the record)
# go to $AMP_TMP/dl.rest, and the transfer stops there. curl --max-filesize stops a larger announced
# Content-Length before any byte. Sets `code` (the HTTP status) and AMP_FETCH_RC (curl's exit code:
# 23 when the cap closed the pipe, 63 over --max-filesize).
amp_fetch_capped() {
  local url=$1 size=$2 file=$3 cap=$(($2 > 65536 ? $2 : 65536)) st
  local args=(-sS --proto '=http,https' --max-time "${AMP_UPLOAD_TIMEOUT:-600}" --max-filesize "$cap"
    -D "$AMP_TMP/dl.hdr" -o -)
  : >"$AMP_TMP/dl.hdr"
  : >"$AMP_TMP/dl.rest"
  set +e
  if [ "${4:-}" = auth ]; then
    curl "${args[@]}" -H @<(printf 'Authorization: Bearer %s\n' "$(<"$AGENT_DIR/api_key")") -- "$url" 2>"$AMP_TMP/dl.err" |
      { head -c "$size" >"$file"; head -c 65536 >"$AMP_TMP/dl.rest"; }
  else
    curl "${args[@]}" -- "$url" 2>"$AMP_TMP/dl.err" | { head -c "$size" >"$file"; head -c 65536 >"$AMP_TMP/dl.rest"; }
  fi
  st=("${PIPESTATUS[@]}")
  set -e
  AMP_FETCH_RC=${st[0]}
  code=$(tr -d '\r' <"$AMP_TMP/dl.hdr" | awk '/^HTTP\// { c = $2 } END { print c }')
}

# amp_download_attachment RECORD_JSON DIR: fetch one attachment from its url (plain curl, no
# redirects followed) or else GET /attachments/{id}/download with the API key, check its size and
# SHA-256 against the record, and keep it in DIR under its sanitised name (never overwriting).
amp_download_attachment() {
  local rec=$1 dir=$2 id name size digest url code got_size got_hex path
  id=$(jq -r '.id // empty' <<<"$rec")
  amp_valid_att_id "$id" || amp_die "$AMP_EXIT_FAILED" "the message names an invalid attachment id '$id'"
  size=$(jq -r '.size // empty' <<<"$rec")
  digest=$(jq -r '.digest // empty' <<<"$rec")
  [[ $size =~ ^[0-9]{1,12}$ && $digest =~ ^sha256:[0-9a-fA-F]{64}$ ]] ||
    amp_die "$AMP_EXIT_FAILED" "attachment $id has no size and sha256 digest on record: not downloaded"
  size=$((10#$size))
  if ! jq -e '(.signed_digest == null or (.signed_digest | ascii_downcase) == (.digest | ascii_downcase))
      and (.signed_size == null or .signed_size == .size)' <<<"$rec" >/dev/null; then
    amp_die "$AMP_EXIT_DIGEST_MISMATCH" "attachment $id: the provider's record differs from the size/digest the sender signed: not downloaded"
  fi
  name=$(amp_safe_filename "$(jq -r '.filename // empty' <<<"$rec")" "$id")
  url=$(jq -r '.url // empty' <<<"$rec")
  AMP_PARTIAL=$(mktemp -- "$dir/.amp-download-XXXXXX")
  if [ -n "$url" ]; then
    [[ $url =~ ^https?:// ]] || amp_die "$AMP_EXIT_FAILED" "attachment $id: its url is not http(s): not downloaded"
    amp_fetch_capped "$url" "$size" "$AMP_PARTIAL"
  else
    url="$AGENT_ENDPOINT/attachments/$id/download"
    amp_fetch_capped "$url" "$size" "$AMP_PARTIAL" auth
  fi
  [ "$AMP_FETCH_RC" = 0 ] || [ "$AMP_FETCH_RC" = 23 ] || [ "$AMP_FETCH_RC" = 63 ] ||
    amp_die "$AMP_EXIT_UNREACHABLE" "downloading attachment $id: cannot reach ${url%%\?*} ($(sed -E 's/^curl: \([0-9]+\) //' "$AMP_TMP/dl.err"))"
  [ "$AMP_FETCH_RC" != 63 ] || amp_die "$AMP_EXIT_DIGEST_MISMATCH" \
    "attachment $id ($name): the server announced more than its record's $size bytes: not downloaded"
  if [ "$code" != 200 ]; then
    AMP_STATUS=$code AMP_BODY=$(cat "$AMP_PARTIAL" "$AMP_TMP/dl.rest" 2>/dev/null | head -c 4096)
    amp_fail "downloading attachment $id"
  fi
  if [ "$AMP_FETCH_RC" != 0 ] || [ -s "$AMP_TMP/dl.rest" ]; then
    amp_die "$AMP_EXIT_DIGEST_MISMATCH" "attachment $id ($name) is larger than its record's $size bytes: the transfer was stopped and the download removed"
  fi
  got_size=$(stat -c %s -- "$AMP_PARTIAL")
  got_hex=$(sha256sum <"$AMP_PARTIAL" | cut -d ' ' -f 1)
  if [ "$got_size" != "$size" ] || [ "sha256:$got_hex" != "${digest,,}" ]; then
    amp_die "$AMP_EXIT_DIGEST_MISMATCH" "attachment $id ($name) does not match its record: got $got_size bytes, sha256:$got_hex; expected $size bytes, ${digest,,}. The download was removed"
  fi
  path=$(amp_free_path "$dir" "$name")
  mv -f -- "$AMP_PARTIAL" "$path"
  AMP_PARTIAL=""
  AMP_SAVED_PATH=$path
}
