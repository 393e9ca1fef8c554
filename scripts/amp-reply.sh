#!/usr/bin/env bash
# amp-reply.sh: answer a message in its thread: to its sender, "Re: <subject>", in_reply_to its id,
# and its thread_id, signed like amp-send.sh.
set -euo pipefail
# shellcheck source=amp-lib.sh source-path=SCRIPTDIR
. "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/amp-lib.sh"

usage() {
  cat <<USAGE
Reply to a message, keeping its thread.

Usage: $AMP_PROG [options] <message-id> <message>

Options:
  -a, --agent NAME       Agent name (default: first registered)
  -p, --priority LEVEL   low, normal, high, urgent (default: the original's priority)
  -t, --type TYPE        request, response, notification, update (default: response)
  -d, --directory DIR    Config directory (default: \$AMP_DIR or ~/.agent-messaging)
      --json             Print the provider's answer as JSON on stdout
  -h, --help             Show help

The original must still be pending, or have been shown by 'amp-inbox.sh read' (which keeps a copy).

Example:
  $AMP_PROG msg_1767225600_ab12cd34 "Done: see the PR."

Exit codes: 0 sent, 1 refused or failed, 2 usage, 3 provider not found, 4 unauthorized,
5 no such message or unknown recipient, 6 no such local agent, 8 the agent awaits approval.
USAGE
}

agent="" priority="" type=response args=()
while [ $# -gt 0 ]; do
  case "$1" in
    -a | --agent) [ $# -ge 2 ] || amp_usage_error "$1 needs a value"; agent=$2; shift 2 ;;
    -p | --priority) [ $# -ge 2 ] || amp_usage_error "$1 needs a value"; priority=$2; shift 2 ;;
    -t | --type) [ $# -ge 2 ] || amp_usage_error "$1 needs a value"; type=$2; shift 2 ;;
    -d | --directory) [ $# -ge 2 ] || amp_usage_error "$1 needs a value"; AMP_DIR=$2; shift 2 ;;
    --json) AMP_JSON=1; shift ;;
    -h | --help) usage; exit 0 ;;
    --) shift; args+=("$@"); break ;;
    -?*) amp_usage_error "unknown option '$1'" ;;
    *) args+=("$1"); shift ;;
  esac
done
[ ${#args[@]} -eq 2 ] || amp_usage_error "expected <message-id> <message>, got ${#args[@]} argument(s)"
id=${args[0]} message=${args[1]}
amp_valid_id "$id" || amp_usage_error "'$id' is not a message id (msg_<digits>_<letters/digits>)"
[ -z "$priority" ] || [[ $priority =~ ^(low|normal|high|urgent)$ ]] || amp_usage_error "priority must be low, normal, high or urgent (got '$priority')"
[[ $type =~ ^(request|response|notification|update)$ ]] || amp_usage_error "type must be request, response, notification or update (got '$type')"
amp_require_tools
amp_load_agent "$agent"

original=$(amp_find_message "$id")
[ -n "$original" ] || amp_die "$AMP_EXIT_NOT_FOUND" "no message $id for $AGENT_ADDRESS: it is not pending and was not read with amp-inbox.sh read"
to=$(jq -r '.envelope.from' <<<"$original")
subject=$(jq -r '.envelope.subject | if test("^re:"; "i") then . else "Re: " + . end' <<<"$original")
thread=$(jq -r '.envelope.thread_id // .id' <<<"$original")
[ -n "$priority" ] || priority=$(jq -r '.envelope.priority // "normal"' <<<"$original")

amp_send "$to" "$subject" "$message" "$priority" "$type" "$id" "$thread"
