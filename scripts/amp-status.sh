#!/usr/bin/env bash
# amp-status.sh: who am I (identity), is the provider there (health), and what waits (pending).
set -euo pipefail
# shellcheck source=amp-lib.sh source-path=SCRIPTDIR
. "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/amp-lib.sh"

usage() {
  cat <<USAGE
Show an agent's identity, the provider's health, the number of pending messages, and the
reachability of the provider's mesh hosts and federated providers (when it has any).

Usage: $AMP_PROG [options]

Options:
  -a, --agent NAME       Agent name (default: first registered)
  -d, --directory DIR    Config directory (default: \$AMP_DIR or ~/.agent-messaging)
      --json             Print the status as JSON on stdout
  -h, --help             Show help

Peers (GET /api/v1/peers) print as, e.g.:
  Mesh:      host-c reachable
  Federation: b.example unreachable (connect ECONNREFUSED 10.0.0.7:23000), 1 waiting
each reachable, unreachable (the last error) or not contacted yet, by the last attempt since the
provider started; --json has them under peers: {mesh: [...], federation: [...]}.

Exit codes: 0 ok, 1 provider unhealthy or refused, 2 usage, 3 provider not found,
4 unauthorized, 6 no such local agent.
USAGE
}

agent=""
while [ $# -gt 0 ]; do
  case "$1" in
    -a | --agent) [ $# -ge 2 ] || amp_usage_error "$1 needs a value"; agent=$2; shift 2 ;;
    -d | --directory) [ $# -ge 2 ] || amp_usage_error "$1 needs a value"; AMP_DIR=$2; shift 2 ;;
    --json) AMP_JSON=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) amp_usage_error "unexpected argument '$1'" ;;
  esac
done
amp_require_tools
amp_load_agent "$agent"

amp_http GET "$AGENT_ENDPOINT/health"
health=$AMP_BODY
amp_ok || amp_die "$AMP_EXIT_FAILED" "the provider at $PROVIDER_URL is unhealthy (HTTP $AMP_STATUS): $(amp_error_text)"
amp_http GET "$AGENT_ENDPOINT/agents/me" "" auth
amp_ok || amp_fail "reading agent $AGENT_NAME"
me=$AMP_BODY
amp_http GET "$AGENT_ENDPOINT/messages/pending?limit=1" "" auth
amp_ok || amp_fail "counting pending messages"
pending=$(jq '.count + .remaining' <<<"$AMP_BODY")
# Mesh hosts and federated providers (§19); an older provider without GET /peers shows none.
amp_http GET "$AGENT_ENDPOINT/peers" "" auth
peers='{"mesh": [], "federation": []}'
! amp_ok || peers=$AMP_BODY
others=$(amp_agent_names | paste -sd' ' -)
default=$(amp_first_agent)

status=$(jq -n --arg name "$AGENT_NAME" --arg dir "$AGENT_DIR" --arg provider "$PROVIDER_URL" --argjson me "$me" \
  --argjson health "$health" --argjson pending "$pending" --arg agents "$others" --arg default "$default" --argjson peers "$peers" '{
    agent: {name: $name, address: $me.address, agent_id: $me.agent_id, tenant: $me.tenant, status: $me.status,
            fingerprint: $me.fingerprint, online: $me.online, config_dir: $dir, default: ($name == $default)},
    provider: {url: $provider, status: $health.status, version: $health.version, domain: $health.provider,
               agents_online: $health.agents_online, uptime_seconds: $health.uptime_seconds},
    pending: $pending,
    peers: {mesh: ($peers.mesh // []), federation: ($peers.federation // [])},
    local_agents: ($agents | split(" ") | map(select(. != "")))
  }')
if [ "$AMP_JSON" = 1 ]; then
  printf '%s\n' "$status"
else
  jq -r '"Agent:     \(.agent.name)" + (if .agent.default then " (default)" else "" end),
    "Address:   \(.agent.address)", "Status:    \(.agent.status)", "Key:       \(.agent.fingerprint)",
    "Provider:  \(.provider.url) (\(.provider.status), amp-relay \(.provider.version), \(.provider.agents_online) agent(s) online)",
    "Pending:   \(.pending) message(s)",
    "Local agents: \(.local_agents | join(", "))",
    (def peer: "\(.id) " + (if .reachable == true then "reachable" elif .reachable == false
        then "unreachable" + (if .last_error then " (\(.last_error))" else "" end) else "not contacted yet" end)
        + (if .pending > 0 then ", \(.pending) waiting" else "" end);
     (if (.peers.mesh | length) > 0 then "Mesh:      " + (.peers.mesh | map(peer) | join("; ")) else empty end),
     (if (.peers.federation | length) > 0 then "Federation: " + (.peers.federation | map(peer) | join("; "))
      else empty end))' <<<"$status" >&2
  if [ "$(jq -r '.agent.status' <<<"$status")" = pending ]; then
    amp_say "" "$AGENT_NAME awaits an admin's approval of its identity registration and cannot send yet." \
      "See the user code and the registration's status with: amp-identity.sh -a $AGENT_NAME status"
  fi
fi
