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
  download <id> [DIR]
                Save the attachments of a message (message id), or one attachment (its
                att_... id), in DIR (default: the current directory)

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
  $AMP_PROG download msg_123456_abc ~/Downloads

'read' checks the sender's Ed25519 signature against the public key the provider resolves for
the sender, and keeps a copy of the message in the agent's messages/ directory (for amp-reply.sh).
A sender on another provider (federation) or mesh host is not resolvable here: its key is then the
message's sender_public_key, which your provider checked on receipt (the sender's key at its home
provider, or the one the authenticated mesh host named). --json adds signature_check
(verified, unverified, unsigned) and signature_key (provider, message, none).
'list' and 'read' show each attachment's name, size and scan status.

'download' fetches each attachment from the url in the message (plain curl, redirects not
followed; without a url from /attachments/<id>/download with the API key), checks its size and
SHA-256 against the message's record (the provider's, and what the sender signed), and saves it
under its sanitised name ([A-Za-z0-9._-]), never overwriting or opening an existing entry (file,
symlink, fifo): report.txt exists, so report_1.txt, report_2.txt ... It reads at most the
recorded size: a larger or non-matching file is stopped and removed (exit 11). A signed message's
signature is verified first, as 'read' does (exit 7 when it does not verify); for an unsigned
message only the provider's record is checked. It prints the saved paths on stdout
(--json: [{id, path, filename, size, digest}]). The message must be pending or read.

Exit codes: 0 ok, 1 refused or failed, 2 usage, 3 provider not found, 4 unauthorized,
5 no such message or attachment, 6 no such local agent, 7 the signature did not verify,
11 a downloaded attachment did not match its size or digest, or was larger (removed).
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
  download)
    [[ ${#args[@]} -ge 2 && ${#args[@]} -le 3 ]] || amp_usage_error "'download' needs a message or attachment id, and optionally a directory"
    amp_valid_id "${args[1]}" || amp_valid_att_id "${args[1]}" ||
      amp_usage_error "'${args[1]}' is neither a message id (msg_<digits>_<letters/digits>) nor an attachment id (att_<digits>_<letters/digits>)"
    ;;
  *) amp_usage_error "unknown command '$cmd' (list, read, ack, ack-all, download)" ;;
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
          (.messages[] | "  \(.id)  \(.envelope.timestamp)  [\(.envelope.priority // "normal")]  from \(.envelope.from)  \(.envelope.subject)",
            (.attachments // .payload.attachments // [] | if type == "array" then .[] else empty end | select(type == "object")
              | "      attachment: \(.filename // "-")  \(.size // "?") bytes  \(.scan_status // "?")"))
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
    amp_signature_status "$msg"
    verified=$AMP_SIG_STATUS
    if [ "$AMP_JSON" = 1 ]; then
      jq --arg v "$verified" --arg k "$AMP_SIG_KEY_SOURCE" '. + {signature_check: $v, signature_key: $k}' <<<"$msg"
    else
      jq -r '"Message:  \(.id)", "From:     \(.envelope.from)", "To:       \(.envelope.to)", "Subject:  \(.envelope.subject)",
        "Priority: \(.envelope.priority // "normal")", "Type:     \(.payload.type // "-")", "Sent:     \(.envelope.timestamp)",
        "Thread:   \(.envelope.thread_id // .id)" + (if .envelope.in_reply_to then " (reply to \(.envelope.in_reply_to))" else "" end),
        "", (.payload.message // (.payload | tojson)),
        ((.attachments // .payload.attachments // []) | if type == "array" and length > 0 then
          "", "Attachments (save them with: amp-inbox.sh download \($id)):",
          (.[] | select(type == "object")
            | "  \(.id // .attachment_id)  \(.filename // "-")  \(.size // "?") bytes  \(.content_type // "-")  \(.scan_status // "?")")
        else empty end),
        (if ((.warnings // []) | index("attachment_suspicious")) then
          "Warning: an attachment was found suspicious by the provider'"'"'s scan and approved by an admin" else empty end)' \
        --arg id "$id" <<<"$msg" >&2
      case "$verified:$AMP_SIG_KEY_SOURCE" in
        verified:message) amp_say "" "Signature: verified (Ed25519, key of $from at its home provider or mesh host, as your provider received and checked it)" ;;
        verified:*) amp_say "" "Signature: verified (Ed25519, key of $from)" ;;
        unsigned:*) amp_say "" "Signature: none (the message is unsigned; the provider authenticated the sender's API key only)" ;;
        *:none) amp_say "" "Signature: NOT verified: your provider has no key for $from (not an agent there, and no checked sender key came with the message)" ;;
        *:message) amp_say "" "Signature: NOT verified: it does not match the key of $from that came with the message" ;;
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

  download)
    target=${args[1]} dir=${args[2]:-.}
    [[ $dir != -* ]] || dir="./$dir" # never taken for an option (mkdir, mktemp, ...)
    mkdir -p -- "$dir" 2>/dev/null || amp_die "$AMP_EXIT_FAILED" "cannot create directory '$dir'"
    [ -w "$dir" ] || amp_die "$AMP_EXIT_FAILED" "cannot write to directory '$dir'"
    if amp_valid_id "$target"; then
      msg=$(amp_find_message "$target")
      [ -n "$msg" ] || amp_die "$AMP_EXIT_NOT_FOUND" "no pending or read message $target for $AGENT_ADDRESS (list them with: $AMP_PROG list)"
      amp_require_signature "$msg"
      records=$(amp_attachment_records "$msg")
      [ "$(jq length <<<"$records")" -gt 0 ] || amp_die "$AMP_EXIT_NOT_FOUND" "message $target has no attachments"
    else
      records=$(amp_find_attachment "$target")
    fi
    : >"$AMP_TMP/saved.jsonl"
    n=$(jq length <<<"$records")
    for i in $(seq 0 $((n - 1))); do
      rec=$(jq -c ".[$i]" <<<"$records")
      amp_download_attachment "$rec" "$dir"
      jq -c --arg path "$AMP_SAVED_PATH" '{id, path: $path, filename, size, digest}' <<<"$rec" >>"$AMP_TMP/saved.jsonl"
      if [ "$AMP_JSON" = 0 ]; then
        printf '%s\n' "$AMP_SAVED_PATH"
        amp_say "Saved $(jq -r '.id' <<<"$rec") as $AMP_SAVED_PATH ($(jq -r '.size' <<<"$rec") bytes, sha256 verified)"
      fi
    done
    if [ "$AMP_JSON" = 1 ]; then jq -s . "$AMP_TMP/saved.jsonl"; fi
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
