#!/usr/bin/env bash
# Renders a report.html in headless Chromium, offline, to a PNG screenshot to look at, and
# prints the page's console messages: a chart that fails to draw shows up there.
#
#   scripts/check_report_html.sh REPORT.html [OUT.png] [HEIGHT]
#
# Needs Debian's chromium (apt-get install -y chromium). Exits non-zero when the page logs an
# error or no screenshot is written.
set -euo pipefail

if [[ $# -lt 1 || $# -gt 3 ]]; then
  echo "usage: $0 REPORT.html [OUT.png] [HEIGHT]" >&2
  exit 2
fi
report=$(realpath "$1")
out=$(realpath -m "${2:-${1%.html}.png}")
height=${3:-5000}
browser=$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)
if [[ -z "$browser" ]]; then
  echo "no chromium found: apt-get install -y chromium" >&2
  exit 2
fi

profile=$(mktemp -d)
log=$(mktemp)
trap 'rm -rf "$profile" "$log"' EXIT
rm -f "$out"
# No network features: the page must draw from what it carries.
"$browser" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
  --disable-background-networking --disable-component-update --disable-sync \
  --disable-dev-shm-usage --hide-scrollbars --user-data-dir="$profile" \
  --enable-logging=stderr --v=0 --window-size=1400,"$height" --virtual-time-budget=10000 \
  --screenshot="$out" "file://$report" >"$log" 2>&1 || true

# Console messages from the page itself (not Chromium's own chatter).
console=$(grep -E 'CONSOLE|Uncaught' "$log" || true)
if [[ -n "$console" ]]; then
  echo "page console:"
  echo "$console"
fi
if [[ ! -s "$out" ]]; then
  echo "no screenshot written; chromium said:" >&2
  tail -20 "$log" >&2
  exit 1
fi
echo "screenshot: $out"
if grep -qiE 'CONSOLE\(.*(error|uncaught)|Uncaught' <<<"$console"; then
  echo "the page logged errors" >&2
  exit 1
fi
