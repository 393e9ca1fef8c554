#!/usr/bin/env bash
# amp-identity.sh: the agent's Agent Identity (AID) registration with its provider: file the
# request (with the AMP API key), poll its status (with a signed proof), and trade a proof of key
# possession for an OIDC access token (JWT). Proofs are signed with openssl like the messages.
set -euo pipefail
# shellcheck source=amp-lib.sh source-path=SCRIPTDIR
. "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/amp-lib.sh"

usage() {
  cat <<USAGE
Manage the agent's Agent Identity (AID) registration and get its access tokens.

Usage: $AMP_PROG [options] <command>

Commands:
  request       File the identity registration (once; an admin approves it)
  status        Poll the registration's status: pending, active, rejected, suspended, deleted
  token         Get an access token (a JWT) by signing a proof with the agent's key

Options:
  -a, --agent NAME       Agent name (default: first registered)
  -d, --directory DIR    Config directory (default: \$AMP_DIR or ~/.agent-messaging)
      --json             Print data as JSON on stdout
  -h, --help             Show help
request:
      --description TEXT What the agent does (shown to the admin)
      --force            File again although a request is on record (a pending one gets a new user code)
status:
      --wait SECONDS     Keep polling (at the provider's interval) while pending, at most SECONDS
token:
      --scope SCOPES     Space-separated scopes (default: all of the agent's role)
      --audience URL     The resource the token is for (one the provider lists; default: the issuer)
      --new              Do not reuse the saved token

Example:
  $AMP_PROG request
  $AMP_PROG status --wait 600
  curl -H "Authorization: Bearer \$($AMP_PROG token)" https://service.example/api

'request' sends the agent's own name, address, key and fingerprint with its AMP API key; the
provider answers with a user code that an admin approves. 'token' prints the access token on
stdout (--json: the provider's whole answer) and keeps it in identity-token.json, reused while it
has more than a minute left. Files: DIR/agents/NAME/identity.json, identity-token.json (0600).
Exit codes: 0 ok (status: active), 1 refused or failed (status: rejected, suspended, deleted or
expired), 2 usage, 3 provider not found, 4 unauthorized, 5 no registration on record,
6 no such local agent, 8 the registration awaits an admin's approval, 9 polled too soon (try again later).
USAGE
}

agent="" description="" force=0 wait=0 scope="" audience="" fresh=0 args=()
while [ $# -gt 0 ]; do
  case "$1" in
    -a | --agent) [ $# -ge 2 ] || amp_usage_error "$1 needs a value"; agent=$2; shift 2 ;;
    -d | --directory) [ $# -ge 2 ] || amp_usage_error "$1 needs a value"; AMP_DIR=$2; shift 2 ;;
    --description) [ $# -ge 2 ] || amp_usage_error "$1 needs a value"; description=$2; shift 2 ;;
    --force) force=1; shift ;;
    --wait) [ $# -ge 2 ] || amp_usage_error "$1 needs a value"; wait=$2; shift 2 ;;
    --scope) [ $# -ge 2 ] || amp_usage_error "$1 needs a value"; scope=$2; shift 2 ;;
    --audience) [ $# -ge 2 ] || amp_usage_error "$1 needs a value"; audience=$2; shift 2 ;;
    --new) fresh=1; shift ;;
    --json) AMP_JSON=1; shift ;;
    -h | --help) usage; exit 0 ;;
    --) shift; args+=("$@"); break ;;
    -?*) amp_usage_error "unknown option '$1'" ;;
    *) args+=("$1"); shift ;;
  esac
done
[ ${#args[@]} -eq 1 ] || amp_usage_error "expected one command (request, status, token), got ${#args[@]} argument(s)"
cmd=${args[0]}
case "$cmd" in
  request | status | token) ;;
  *) amp_usage_error "unknown command '$cmd' (request, status, token)" ;;
esac
if ! [[ $wait =~ ^[0-9]{1,6}$ ]]; then amp_usage_error "--wait must be a whole number of seconds (got '$wait')"; fi
[ ${#description} -le 2000 ] || amp_usage_error "--description is longer than 2000 characters"
[ -z "$audience" ] || [[ $audience =~ ^https?://[^[:space:]]+$ ]] || amp_usage_error "--audience must be an http(s) URL (got '$audience')"
[[ $scope =~ ^[[:graph:]\ ]*$ ]] || amp_usage_error "--scope must be space-separated scope names"
amp_require_tools
amp_load_agent "$agent"
amp_aid_init
file=$(amp_identity_file)
me=$AGENT_ADDRESS

# ---- request ----

do_request() {
  local status
  status=$(amp_aid_recorded status)
  if [ "$force" = 0 ] && [[ $status =~ ^(pending|active|suspended|registered)$ ]]; then
    if [ "$AMP_JSON" = 1 ]; then jq . "$file"; else
      amp_say "The identity registration of $me is on record ($file): $status."
      if [ "$status" = pending ]; then amp_aid_tell_admin; fi
      amp_say "Poll it with: $AMP_PROG status (file a new request with --force)"
    fi
    return 0
  fi
  if ! amp_aid_request "$description"; then
    local code
    code=$(jq -r '.error // .errors[0].code // empty' <<<"$AMP_BODY" 2>/dev/null || true)
    case "$AMP_STATUS:$code" in
      422:already_registered)
        # Filed elsewhere (another client, or an admin created it): tokens work by fingerprint.
        jq -n --arg tenant "$AGENT_TENANT" --arg address "$me" --arg now "$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
          '{registration_id: null, tenant: $tenant, address: $address, status: "registered", requested_at: $now}' |
          amp_write_private "$file"
        amp_die "$AMP_EXIT_FAILED" "the provider already has an active or suspended identity registration for this key ($(amp_error_text)); if it is active, '$AMP_PROG token' works" ;;
      401:* | 403:forbidden) amp_fail "filing the identity registration" ;;
      404:*) amp_die "$AMP_EXIT_NOT_FOUND" "the provider has no Agent Identity registration for tenant $AGENT_TENANT at $IDENTITY_BASE ($(amp_error_text))" ;;
      *) amp_die "$AMP_EXIT_FAILED" "filing the identity registration refused (HTTP $AMP_STATUS${code:+ $code}): $(amp_error_text)" ;;
    esac
  fi
  if [ "$AMP_JSON" = 1 ]; then jq . "$file"; else amp_aid_tell_admin; fi
}

# ---- status ----

# One poll; prints nothing. Sets poll_status (pending, active, ..., expired, slow_down) and answer.
poll_once() {
  local id
  id=$(amp_aid_recorded registration_id)
  amp_aid_resolve
  amp_aid_proof aid-registration-status "$AID_ISSUER" "$AMP_TMP/status-proof" "$(amp_aid_recorded status_proof_ts)"
  jq --argjson ts "$AMP_PROOF_TS" '.status_proof_ts = $ts' "$file" | amp_write_private "$file"
  jq -n --arg fp "$AGENT_FINGERPRINT" --rawfile proof "$AMP_TMP/status-proof" '{fingerprint: $fp, proof: $proof}' >"$AMP_TMP/status.json"
  amp_http POST "$IDENTITY_BASE/agent_registrations/$id/status" "$AMP_TMP/status.json"
  answer=$AMP_BODY
  case "$AMP_STATUS" in
    200) poll_status=$(jq -r '.data.attributes.status // .status // "unknown"' <<<"$answer") ;;
    410) poll_status=expired ;;
    429) poll_status=slow_down ;;
    404) amp_die "$AMP_EXIT_NOT_FOUND" "the provider does not know identity registration $id ($(amp_error_text)); file a new one: $AMP_PROG request --force" ;;
    *) amp_die "$AMP_EXIT_FAILED" "status poll refused (HTTP $AMP_STATUS): $(amp_error_text)" ;;
  esac
  if [ "$AMP_STATUS" = 200 ]; then
    jq --arg s "$poll_status" --argjson a "$answer" --arg now "$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
      '($a.data.attributes // {}) as $r | . + {status: $s, checked_at: $now}
        + ({role_name: $r.role_name, rejection_reason: $r.rejection_reason, suspension_reason: $r.suspension_reason,
            token_endpoint: $r.token_endpoint, issuer: $r.oidc_issuer} | with_entries(select(.value != null)))' \
      "$file" | amp_write_private "$file"
  elif [ "$poll_status" = expired ]; then
    jq '.status = "expired"' "$file" | amp_write_private "$file"
  fi
}

do_status() {
  local id deadline told=0 interval slowed=0
  [ -f "$file" ] || amp_die "$AMP_EXIT_NOT_FOUND" "no identity registration on record for $me; file one with: $AMP_PROG request"
  id=$(amp_aid_recorded registration_id)
  [ -n "$id" ] || amp_die "$AMP_EXIT_NOT_FOUND" "the identity registration of $me was not filed by this CLI, so its id is unknown here; '$AMP_PROG token' works if it is active"
  deadline=$(($(date +%s) + wait))
  # Bounded: each round waits at least a second, and the rounds stop at the deadline.
  while :; do
    poll_once
    case "$poll_status" in
      pending | slow_down)
        # The provider's number, used in arithmetic and sleep: whole seconds only (bash would run a
        # $(...) hidden in an array index), at least 1 and at most 60, so --wait stays bounded.
        interval=$(jq -r '.interval // 5' <<<"$answer")
        [[ $interval =~ ^[0-9]{1,6}$ ]] || interval=5
        interval=$((10#$interval < 1 ? 1 : 10#$interval > 60 ? 60 : 10#$interval))
        if [ "$poll_status" = pending ] && [ "$told" = 0 ] && [ "$AMP_JSON" = 0 ]; then
          amp_say "$me: pending (waiting for an admin to approve user code $(amp_aid_recorded user_code))"
          told=1
        fi
        # A slow_down answer says nothing of the status: with --wait, wait it out once even past the deadline.
        if [ "$poll_status" = slow_down ] && [ "$wait" -gt 0 ] && [ "$slowed" = 0 ]; then
          slowed=1
        elif [ $(($(date +%s) + interval)) -gt "$deadline" ]; then
          break
        fi
        sleep "$interval"
        ;;
      *) break ;;
    esac
  done
  if [ "$poll_status" = slow_down ]; then
    amp_die "$AMP_EXIT_TOO_SOON" "polled too soon: the provider now asks for $interval s between polls; try again then, or use --wait SECONDS"
  fi
  if [ "$AMP_JSON" = 1 ]; then printf '%s\n' "$answer"; fi
  case "$poll_status" in
    active)
      [ "$AMP_JSON" = 1 ] || amp_say "$me: active (role $(amp_aid_recorded role_name)). Get a token with: $AMP_PROG token" ;;
    pending) exit "$AMP_EXIT_PENDING" ;;
    rejected)
      [ "$AMP_JSON" = 1 ] || amp_say "$me: rejected by an admin$(jq -r '.data.attributes.rejection_reason // empty | " (" + . + ")"' <<<"$answer"). File a new request with: $AMP_PROG request"
      exit "$AMP_EXIT_FAILED" ;;
    expired)
      [ "$AMP_JSON" = 1 ] || amp_say "$me: the request expired before an admin approved it. File it again with: $AMP_PROG request"
      exit "$AMP_EXIT_FAILED" ;;
    *)
      [ "$AMP_JSON" = 1 ] || amp_say "$me: $poll_status$(jq -r '.data.attributes.suspension_reason // empty | " (" + . + ")"' <<<"$answer")"
      exit "$AMP_EXIT_FAILED" ;;
  esac
}

# ---- token ----

token_file="$AGENT_DIR/identity-token.json"

# The saved token when it is for the same scope and audience and has more than 60 s left.
cached_token() {
  [ "$fresh" = 0 ] && [ -f "$token_file" ] || return 1
  jq -e --arg key "$scope|$audience" --argjson now "$(date +%s)" \
    'select(.cache_key == $key and .expires_at - $now > 60)' "$token_file" >/dev/null 2>&1
}

do_token() {
  if ! cached_token; then
    amp_aid_resolve
    local last=""
    if [ -f "$token_file" ]; then last=$(jq -r '.proof_ts // empty' "$token_file"); fi
    amp_aid_proof aid-token-exchange "$AID_ISSUER" "$AMP_TMP/token-proof" "$last"
    jq -jn --arg grant "$AMP_AID_GRANT" --arg fp "$AGENT_FINGERPRINT" --arg address "$me" \
      --rawfile proof "$AMP_TMP/token-proof" --arg scope "$scope" --arg resource "$audience" \
      '[["grant_type", $grant], ["fingerprint", $fp], ["agent_address", $address], ["proof", $proof]]
        + (if $scope == "" then [] else [["scope", $scope]] end)
        + (if $resource == "" then [] else [["resource", $resource]] end)
        | map("\(.[0])=\(.[1] | @uri)") | join("&")' >"$AMP_TMP/token.form"
    amp_http POST "$AID_TOKEN_URL" "$AMP_TMP/token.form" "" application/x-www-form-urlencoded
    if ! amp_ok; then
      # The provider may have taken the proof before refusing (a pending registration): remember its second.
      { if [ -f "$token_file" ]; then cat "$token_file"; else echo '{}'; fi; } |
        jq --argjson ts "$AMP_PROOF_TS" '.proof_ts = $ts' | amp_write_private "$token_file"
      token_refused
    fi
    jq --arg key "$scope|$audience" --argjson now "$(date +%s)" --argjson ts "$AMP_PROOF_TS" \
      '{answer: ., cache_key: $key, expires_at: ($now + (.expires_in // 3600)), proof_ts: $ts}' <<<"$AMP_BODY" |
      amp_write_private "$token_file"
  fi
  if [ "$AMP_JSON" = 1 ]; then
    jq '.answer + {expires_at: (.expires_at | todate)}' "$token_file"
  else
    jq -r '.answer.access_token' "$token_file"
    amp_say "$(jq -r --argjson now "$(date +%s)" '"Access token for \(.answer.agent_address // "the agent"): scope \(.answer.scope // "-"), expires in \(.expires_at - $now) s (\(.expires_at | todate))"' "$token_file")"
  fi
}

token_refused() {
  local code text
  code=$(jq -r '.error // empty' <<<"$AMP_BODY" 2>/dev/null || true)
  text=$(amp_error_text)
  case "$code" in
    registration_pending)
      amp_die "$AMP_EXIT_PENDING" "the identity registration of $me awaits an admin's approval ($text). Check with: $AMP_PROG status" ;;
    agent_not_registered)
      amp_die "$AMP_EXIT_FAILED" "the provider has no active identity registration for $me ($text). File one with: $AMP_PROG request" ;;
    agent_suspended) amp_die "$AMP_EXIT_FAILED" "the identity registration of $me is suspended ($text)" ;;
    *) amp_die "$AMP_EXIT_FAILED" "token refused (HTTP $AMP_STATUS${code:+ $code}): $text" ;;
  esac
}

case "$cmd" in
  request) do_request ;;
  status) do_status ;;
  token) do_token ;;
esac
