#!/usr/bin/env bash
# amp-send.sh: send a signed message. The payload is signed per spec §10 (payload hash over
# key-sorted compact JSON; Ed25519 over from|to|subject|priority|in_reply_to|hash with
# openssl pkeyutl -rawin), the same bytes the provider verifies.
set -euo pipefail
# shellcheck source=amp-lib.sh source-path=SCRIPTDIR
. "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/amp-lib.sh"

usage() {
  cat <<USAGE
Send a message to another agent.

Usage: $AMP_PROG [options] <recipient> <subject> <message>

Options:
  -a, --agent NAME       Agent name (default: first registered)
  -p, --priority LEVEL   low, normal, high, urgent (default: normal)
  -t, --type TYPE        request, response, notification, update (default: request)
  -r, --reply-to ID      Message ID this is a reply to (keeps its thread)
      --attach FILE      Attach a file (repeatable, up to 10; 25 MiB each, 100 MiB in all)
  -d, --directory DIR    Config directory (default: \$AMP_DIR or ~/.agent-messaging)
      --json             Print the provider's answer as JSON on stdout
  -h, --help             Show help

The recipient is a full address (name@tenant.domain) or a name in your own tenant. The message
always goes to your own provider, which forwards it when the recipient is elsewhere:
  name@<host-id>               an agent on a host of your provider's mesh (§19.2)
  name@tenant.other.example    an agent of another provider, when yours federates with it (§19.1);
                               without federation it refuses with HTTP 422 external_provider, and
                               a provider it does not trust with HTTP 403 provider_not_trusted (exit 1)
amp-status.sh shows whether those hosts and providers are reachable and what waits for them.

Example:
  $AMP_PROG claude@macbook.aimaestro.local "Help" "Can you review my code?"

  $AMP_PROG --attach report.pdf --attach data.csv bob@acme.aimaestro.local "Report" "Both files attached."

Prints the message id and its status: delivered (the recipient is online, or "forwarded to mesh
host <id>": that host took it), queued (in the relay queue until the recipient collects it, or in
your provider's outbound queue until the other host or provider takes it) or failed.

Attachments are uploaded first (SHA-256 and size declared, the bytes PUT to the provider's signed
upload URL, confirmed), then scanned by the provider: the send waits for each scan (polling every
second, up to AMP_SCAN_TIMEOUT seconds, default 60). A rejected file stops the send (exit 1); a
suspicious one is held until an admin approves it (exit 10; run the same command again after
\`npx amp-relay admin attachments approve <id>\`). Nothing is sent unless every file is cleared.
The entries {id, filename, content_type, size, digest, url, scan_status} go in payload.attachments,
covered by the signature. The recipient fetches them with: amp-inbox.sh download <message-id> [DIR]

Exit codes: 0 sent, 1 refused or failed (also a rejected attachment, or a scan still running after
AMP_SCAN_TIMEOUT), 2 usage, 3 provider not found, 4 unauthorized, 5 unknown recipient,
6 no such local agent, 8 the agent awaits an admin's approval (approval mode),
10 an attachment is held for human approval (nothing sent).
USAGE
}

agent="" priority=normal type=request reply_to="" args=() attach=()
while [ $# -gt 0 ]; do
  case "$1" in
    -a | --agent) [ $# -ge 2 ] || amp_usage_error "$1 needs a value"; agent=$2; shift 2 ;;
    -p | --priority) [ $# -ge 2 ] || amp_usage_error "$1 needs a value"; priority=$2; shift 2 ;;
    -t | --type) [ $# -ge 2 ] || amp_usage_error "$1 needs a value"; type=$2; shift 2 ;;
    -r | --reply-to) [ $# -ge 2 ] || amp_usage_error "$1 needs a value"; reply_to=$2; shift 2 ;;
    --attach) [ $# -ge 2 ] || amp_usage_error "$1 needs a file"; attach+=("$2"); shift 2 ;;
    -d | --directory) [ $# -ge 2 ] || amp_usage_error "$1 needs a value"; AMP_DIR=$2; shift 2 ;;
    --json) AMP_JSON=1; shift ;;
    -h | --help) usage; exit 0 ;;
    --) shift; args+=("$@"); break ;;
    -?*) amp_usage_error "unknown option '$1'" ;;
    *) args+=("$1"); shift ;;
  esac
done
[ ${#args[@]} -eq 3 ] || amp_usage_error "expected <recipient> <subject> <message>, got ${#args[@]} argument(s)"
recipient=${args[0]} subject=${args[1]} message=${args[2]}
[ -n "$recipient" ] || amp_usage_error "the recipient is empty"
[ -n "$subject" ] || amp_usage_error "the subject is empty"
[[ $priority =~ ^(low|normal|high|urgent)$ ]] || amp_usage_error "priority must be low, normal, high or urgent (got '$priority')"
[[ $type =~ ^(request|response|notification|update)$ ]] || amp_usage_error "type must be request, response, notification or update (got '$type')"
[ -z "$reply_to" ] || amp_valid_id "$reply_to" || amp_usage_error "reply-to '$reply_to' is not a message id (msg_<digits>_<letters/digits>)"
[ ${#attach[@]} -le "$AMP_MAX_ATTACHMENTS" ] || amp_usage_error "at most $AMP_MAX_ATTACHMENTS attachments per message (got ${#attach[@]})"
for f in "${attach[@]}"; do
  [[ -f $f && -r $f ]] || amp_usage_error "cannot read attachment '$f' (not a readable file)"
done
amp_require_tools
if [ ${#attach[@]} -gt 0 ]; then
  amp_scan_timeout >/dev/null
  command -v sha256sum >/dev/null 2>&1 || amp_die "$AMP_EXIT_FAILED" "sha256sum is required for attachments (Debian: coreutils)"
fi
amp_load_agent "$agent"
[ ${#attach[@]} -eq 0 ] || amp_attach_files "${attach[@]}"

amp_send "$recipient" "$subject" "$message" "$priority" "$type" "$reply_to"
