#!/usr/bin/env bash
# The end-to-end tests drive the server with the tools the brief's users have: curl, openssl 3,
# jq and Python 3 with `requests`; the agent CLI's tests also run shellcheck, the attachment tests
# clamd, the cluster tests nats-server. Install what is missing from Debian's packages when we may
# (root with apt-get); otherwise say what to install.
set -euo pipefail

missing=()
command -v curl >/dev/null 2>&1 || missing+=(curl)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
command -v jq >/dev/null 2>&1 || missing+=(jq)
command -v shellcheck >/dev/null 2>&1 || missing+=(shellcheck)
# The README's reverse-proxy block runs in a real nginx (test/integration/nginx-proxy.test.ts).
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing+=(nginx)
# The attachment tests scan with a real clamd (test/helpers/clamd.ts starts it on a temp socket
# with its own one-signature database: no freshclam, no internet).
command -v clamd >/dev/null 2>&1 || [ -x /usr/sbin/clamd ] || missing+=(clamav-daemon)
# The admin console's tests drive Debian's Chromium headless (playwright-core, test/helpers/browser.ts).
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
# The cluster tests (AMP_STORE=nats) start their own nats-server processes with JetStream
# (test/helpers/nats.ts): Debian's package (2.9.x) has JetStream built in.
command -v nats-server >/dev/null 2>&1 || [ -x /usr/sbin/nats-server ] || missing+=(nats-server)
command -v chromedriver >/dev/null 2>&1 || missing+=(chromium-driver)
has_requests=no
for py in python3 /usr/bin/python3; do
  if command -v "$py" >/dev/null 2>&1 && "$py" -c 'import requests' >/dev/null 2>&1; then has_requests=yes; break; fi
done
[ "$has_requests" = yes ] || missing+=(python3 python3-requests)

[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "amp-relay tests: installing ${missing[*]} (apt-get)" >&2
  export DEBIAN_FRONTEND=noninteractive
  # Packages such as nginx and clamav-daemon start their service on install; the tests start their
  # own, on loopback ports and temp sockets. A policy-rc.d that says "no" (as Docker images have)
  # keeps apt from starting any.
  policy=/usr/sbin/policy-rc.d
  made_policy=no
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 755 "$policy" && made_policy=yes
  fi
  rc=0
  { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}"; } >&2 || rc=$?
  [ "$made_policy" = yes ] && rm -f "$policy"
  exit "$rc"
else
  echo "amp-relay tests need: ${missing[*]}. Install them (Debian: sudo apt-get install ${missing[*]}) and run again." >&2
  exit 1
fi
