#!/usr/bin/env bash
# amp-inbox.sh: list, read (with signature verification), and acknowledge pending messages.
set -euo pipefail
# shellcheck source=amp-lib.sh source-path=SCRIPTDIR
. "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/amp-lib.sh"

usage() {
  cat <<USAGE
Check and manage incoming messages.

Usage: $AMP_PROG [options] [command]

Commands:
  list          List pending messages (default)
  read <id>     Read a specific message and verify its signature
  ack <id>      Acknowledge (delete) a message
  ack-all       Acknowledge all pending messages

Options:
  -a, --agent NAME       Agent name (default: first registered)
  -l, --limit N          Max messages to list, 1-100 (default: 10)
  -d, --directory DIR    Config directory (default: \$AMP_DIR or ~/.agent-messaging)
      --json             Print data as JSON on stdout
  -h, --help             Show help

Example:
  $AMP_PROG list
  $AMP_PROG read msg_123456_abc
  $AMP_PROG ack msg_123456_abc

'read' checks the sender's Ed25519 signature against the public key the provider resolves for
the sender, and keeps a copy of the message in the agent's messages/ directory (for amp-reply.sh).
Exit codes: 0 ok, 1 refused or failed, 2 usage, 3 provider not found, 4 unauthorized,
5 no such message, 6 no such local agent, 7 the signature did not verify.
USAGE
}

agent="" limit=10 args=()
while [ $# -gt 0 ]; do
  case "$1" in
    -a | --agent) [ $# -ge 2 ] || amp_usage_error "$1 needs a value"; agent=$2; shift 2 ;;
    -l | --limit) [ $# -ge 2 ] || amp_usage_error "$1 needs a value"; limit=$2; shift 2 ;;
    -d | --directory) [ $# -ge 2 ] || amp_usage_error "$1 needs a value"; AMP_DIR=$2; shift 2 ;;
    --json) AMP_JSON=1; shift ;;
    -h | --help) usage; exit 0 ;;
    --) shift; args+=("$@"); break ;;
    -?*) amp_usage_error "unknown option '$1'" ;;
    *) args+=("$1"); shift ;;
  esac
done
if ! [[ $limit =~ ^[0-9]{1,3}$ ]] || [ "$limit" -lt 1 ] || [ "$limit" -gt 100 ]; then
  amp_usage_error "limit must be a whole number from 1 to 100 (got '$limit')"
fi
[ ${#args[@]} -gt 0 ] || args=(list)
cmd=${args[0]}
need_id() {
  [ ${#args[@]} -eq 2 ] || amp_usage_error "'$cmd' needs one message id"
  amp_valid_id "${args[1]}" || amp_usage_error "'${args[1]}' is not a message id (msg_<digits>_<letters/digits>)"
}
case "$cmd" in
  list | ack-all) [ ${#args[@]} -eq 1 ] || amp_usage_error "'$cmd' takes no argument" ;;
  read | ack) need_id ;;
  *) amp_usage_error "unknown command '$cmd' (list, read, ack, ack-all)" ;;
esac
amp_require_tools
amp_load_agent "$agent"

case "$cmd" in
  list)
    amp_http GET "$AGENT_ENDPOINT/messages/pending?limit=$limit" "" auth
    amp_ok || amp_fail "listing messages"
    if [ "$AMP_JSON" = 1 ]; then
      printf '%s\n' "$AMP_BODY"
    else
      jq -r --arg me "$AGENT_ADDRESS" '
        if (.messages | length) == 0 then "No pending messages for \($me)."
        else "\(.count) pending message(s) for \($me)" + (if .remaining > 0 then ", \(.remaining) more (use --limit)" else "" end) + ":",
          (.messages[] | "  \(.id)  \(.envelope.timestamp)  [\(.envelope.priority // "normal")]  from \(.envelope.from)  \(.envelope.subject)")
        end' <<<"$AMP_BODY" >&2
    fi
    ;;

  read)
    id=${args[1]}
    msg=$(amp_find_message "$id")
    [ -n "$msg" ] || amp_die "$AMP_EXIT_NOT_FOUND" "no pending message $id for $AGENT_ADDRESS (list them with: $AMP_PROG list)"
    mkdir -p "$AGENT_DIR/messages"
    chmod 700 "$AGENT_DIR/messages"
    (umask 077 && printf '%s\n' "$msg" >"$AGENT_DIR/messages/$id.json")
    from=$(jq -r '.envelope.from' <<<"$msg")
    signature=$(jq -r '.envelope.signature // ""' <<<"$msg")
    verified=unsigned
    if [ -n "$signature" ]; then
      verified=unverified
      amp_http GET "$AGENT_ENDPOINT/agents/resolve/$(jq -rn --arg a "$from" '$a | @uri')" "" auth
      if amp_ok && key=$(jq -er '.public_key' <<<"$AMP_BODY"); then
        if amp_verify_message "$key" "$msg"; then verified=verified; fi
      fi
    fi
    if [ "$AMP_JSON" = 1 ]; then
      jq --arg v "$verified" '. + {signature_check: $v}' <<<"$msg"
    else
      jq -r '"Message:  \(.id)", "From:     \(.envelope.from)", "To:       \(.envelope.to)", "Subject:  \(.envelope.subject)",
        "Priority: \(.envelope.priority // "normal")", "Type:     \(.payload.type // "-")", "Sent:     \(.envelope.timestamp)",
        "Thread:   \(.envelope.thread_id // .id)" + (if .envelope.in_reply_to then " (reply to \(.envelope.in_reply_to))" else "" end),
        "", (.payload.message // (.payload | tojson))' <<<"$msg" >&2
      case "$verified" in
        verified) amp_say "" "Signature: verified (Ed25519, key of $from)" ;;
        unsigned) amp_say "" "Signature: none (the message is unsigned; the provider authenticated the sender's API key only)" ;;
        *) amp_say "" "Signature: NOT verified: it does not match the key the provider has for $from" ;;
      esac
    fi
    [ "$verified" != unverified ] || exit "$AMP_EXIT_BAD_SIGNATURE"
    ;;

  ack)
    id=${args[1]}
    amp_http DELETE "$AGENT_ENDPOINT/messages/pending?id=$id" "" auth
    amp_ok || amp_fail "acknowledging $id"
    if [ "$AMP_JSON" = 1 ]; then printf '%s\n' "$AMP_BODY"; else amp_say "Acknowledged $id"; fi
    ;;

  ack-all)
    total=0
    # Bounded: 1000 pages of 100; each round acks what it listed.
    for _ in $(seq 1 1000); do
      amp_http GET "$AGENT_ENDPOINT/messages/pending?limit=100" "" auth
      amp_ok || amp_fail "listing messages"
      [ "$(jq '.messages | length' <<<"$AMP_BODY")" -gt 0 ] || break
      jq '{ids: [.messages[].id]}' <<<"$AMP_BODY" >"$AMP_TMP/ack.json"
      n=$(jq '.ids | length' "$AMP_TMP/ack.json")
      amp_http POST "$AGENT_ENDPOINT/messages/pending" "$AMP_TMP/ack.json" auth
      amp_ok || amp_fail "acknowledging messages"
      total=$((total + n))
    done
    if [ "$AMP_JSON" = 1 ]; then jq -n --argjson n "$total" '{acknowledged: $n}'; else amp_say "Acknowledged $total message(s)"; fi
    ;;
esac
