#!/usr/bin/env bash
# amp-register.sh: create an Ed25519 identity with openssl, register it with an AMP provider, and
# keep it under ~/.agent-messaging/agents/<name>/ for the other amp-*.sh commands.
set -euo pipefail
# shellcheck source=amp-lib.sh source-path=SCRIPTDIR
. "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/amp-lib.sh"

usage() {
  cat <<USAGE
Register a new external agent with the provider.

Usage: $AMP_PROG [options]

Options:
  -n, --name NAME        Agent name (required): lowercase letters, digits and hyphens
  -p, --provider URL     Provider URL (default: \$AMP_PROVIDER or $AMP_DEFAULT_PROVIDER)
  -t, --tenant TENANT    Tenant name (default: derived from provider, GET /api/organization)
  -d, --directory DIR    Config directory (default: \$AMP_DIR or ~/.agent-messaging)
      --json             Print the registration (with the API key) as JSON on stdout
  -h, --help             Show help

Writes DIR/agents/NAME/{config.json, api_key, keys/private.pem, keys/public.pem}, private to you
(files 0600, directories 0700). The API key is shown once; it stays in the api_key file.
On a provider in approval mode the new agent may not send until an admin approves it: the script
then files the agent's identity registration (as 'amp-identity.sh request' does), keeps it in
identity.json and prints the user code to give the admin.

Example:
  $AMP_PROG --name my-bot --provider http://192.168.1.10:23000

Exit codes: 0 registered, 1 refused (e.g. name taken; or, in approval mode, filing the identity
registration failed: the agent stays registered, file it with amp-identity.sh request), 2 usage,
3 provider not found.
USAGE
}

name="" provider="${AMP_PROVIDER:-$AMP_DEFAULT_PROVIDER}" tenant=""
while [ $# -gt 0 ]; do
  case "$1" in
    -n | --name) [ $# -ge 2 ] || amp_usage_error "$1 needs a value"; name=$2; shift 2 ;;
    -p | --provider) [ $# -ge 2 ] || amp_usage_error "$1 needs a value"; provider=$2; shift 2 ;;
    -t | --tenant) [ $# -ge 2 ] || amp_usage_error "$1 needs a value"; tenant=$2; shift 2 ;;
    -d | --directory) [ $# -ge 2 ] || amp_usage_error "$1 needs a value"; AMP_DIR=$2; shift 2 ;;
    --json) AMP_JSON=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) amp_usage_error "unexpected argument '$1'" ;;
  esac
done
[ -n "$name" ] || amp_usage_error "--name is required"
amp_valid_name "$name" || amp_usage_error "agent name '$name' must be 1-63 lowercase letters, digits or hyphens, not starting or ending with a hyphen"
[ -z "$tenant" ] || amp_valid_name "$tenant" || amp_usage_error "tenant '$tenant' must be lowercase letters, digits or hyphens"
[[ $provider =~ ^https?://[^/]+ ]] || amp_usage_error "provider '$provider' must be an http(s) URL, e.g. $AMP_DEFAULT_PROVIDER"
provider=${provider%/}
amp_require_tools

root=$(amp_root)
dir="$root/agents/$name"
[ ! -e "$dir/config.json" ] || amp_die "$AMP_EXIT_FAILED" "agent '$name' is already registered here ($dir). Choose another name, or remove that directory to start over."

if [ -z "$tenant" ]; then
  amp_http GET "$provider/api/organization"
  if amp_ok; then tenant=$(jq -r '.organization // empty' <<<"$AMP_BODY" 2>/dev/null || true); fi
  tenant=${tenant:-default}
fi

# Keys first, in a directory only we can read; removed again if the provider refuses.
umask 077
created=0
[ -d "$dir" ] || created=1
mkdir -p "$dir/keys"
chmod 700 "$root" "$root/agents" "$dir" "$dir/keys"
cleanup_failed() { if [ "$created" = 1 ]; then rm -rf "$dir"; fi; }
trap 'cleanup_failed; rm -rf "$AMP_TMP"' EXIT
openssl genpkey -algorithm Ed25519 -out "$dir/keys/private.pem" 2>/dev/null
openssl pkey -in "$dir/keys/private.pem" -pubout -out "$dir/keys/public.pem" 2>/dev/null
chmod 600 "$dir/keys/private.pem" "$dir/keys/public.pem"

jq -n --arg tenant "$tenant" --arg name "$name" --rawfile key "$dir/keys/public.pem" \
  '{tenant: $tenant, name: $name, public_key: $key, key_algorithm: "Ed25519"}' >"$AMP_TMP/register.json"
amp_http POST "$provider/api/v1/register" "$AMP_TMP/register.json"
if ! amp_ok; then
  case "$AMP_STATUS" in
    409) amp_die "$AMP_EXIT_FAILED" "the name '$name' is already registered on $provider (tenant $tenant): choose another name" ;;
    *) amp_die "$AMP_EXIT_FAILED" "registration refused (HTTP $AMP_STATUS): $(amp_error_text)" ;;
  esac
fi

api_key=$(jq -r '.api_key // empty' <<<"$AMP_BODY")
[ -n "$api_key" ] || amp_die "$AMP_EXIT_FAILED" "the provider answered without an api_key: $AMP_BODY"
printf '%s\n' "$api_key" >"$dir/api_key"
jq --arg name "$name" --arg provider "$provider" '{
    name: $name,
    address: .address,
    agent_id: .agent_id,
    tenant: (.tenant // .tenant_id),
    provider_url: $provider,
    endpoint: (.provider.endpoint // ($provider + "/api/v1")),
    provider_name: .provider.name,
    fingerprint: .fingerprint,
    registered_at: .registered_at
  }' <<<"$AMP_BODY" >"$dir/config.json"
chmod 600 "$dir/api_key" "$dir/config.json"
created=0
registration=$AMP_BODY

# A provider in approval mode (AMP_REGISTRATION_MODE=approval) makes new agents `pending`: they may
# not send until an admin approves their Agent Identity registration, which only the agent can file
# (with its own API key). So file it now, and say what to tell the admin.
amp_load_agent "$name"
amp_http GET "$AGENT_ENDPOINT/agents/me" "" auth
agent_status=active filed=none
if amp_ok; then agent_status=$(jq -r '.status // "active"' <<<"$AMP_BODY"); fi
if [ "$agent_status" = pending ]; then
  amp_aid_init
  if amp_aid_request ""; then filed=yes; else filed=failed; fi
fi

if [ "$AMP_JSON" = 1 ]; then
  identity=null
  if [ "$filed" = yes ]; then identity=$(cat "$(amp_identity_file)"); fi
  jq --arg dir "$dir" --arg status "$agent_status" --argjson identity "$identity" \
    '. + {config_dir: $dir, status: $status} + (if $identity == null then {} else {identity: $identity} end)' <<<"$registration"
else
  amp_say "Registered $(jq -r .address <<<"$registration") with $provider"
  amp_say "  fingerprint: $(jq -r .fingerprint <<<"$registration")"
  amp_say "  config:      $dir"
  amp_say "  API key (shown only once; saved in $dir/api_key):"
  amp_say "  $api_key"
  if [ "$filed" = yes ]; then
    amp_say "" "This provider admits new agents once an admin approves them (approval mode)."
    amp_aid_tell_admin
  fi
fi
if [ "$filed" = failed ]; then
  amp_die "$AMP_EXIT_FAILED" "this provider admits new agents once an admin approves their identity registration, but filing it was refused (HTTP $AMP_STATUS): $(amp_error_text). File it later with: amp-identity.sh -a $name request"
fi
