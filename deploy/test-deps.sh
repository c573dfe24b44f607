#!/usr/bin/env bash
# The Debian packages the test suite runs, installed when missing (as root), or a stop at once
# with the command to run (not root). Called by `make test` (and its legs) and by .ci/run.
# Each line: a package and a command it provides, which shows whether it is there (a command,
# not dpkg's status: it also works where the tool came another way).
set -euo pipefail
needs=(
    "chromium chromium"   # the page tests drive it through Playwright (never a downloaded browser)
    "mosquitto mosquitto" # the MQTT tests' broker, and its mosquitto_passwd
    "openssl openssl"     # certificates for the broker's TLS listener in the MQTT tests
)
missing=()
for need in "${needs[@]}"; do
    read -r package command <<<"$need"
    # /usr/sbin: mosquitto lives there, outside a normal user's PATH.
    command -v "$command" >/dev/null || [ -x "/usr/sbin/$command" ] || missing+=("$package")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
    echo "test-deps.sh: the tests need Debian packages that are missing: ${missing[*]}" >&2
    echo "  run: sudo apt-get install -y --no-install-suggests ${missing[*]}" >&2
    exit 1
fi
echo "test-deps.sh: installing ${missing[*]}" >&2
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-suggests "${missing[@]}"
