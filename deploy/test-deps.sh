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
    "prometheus prometheus" # the fleet tests scrape a real server with it
    "prometheus promtool" # and check and unit-test the alerting rules
    "iproute2 ip"         # the mDNS tests make a private LAN of network namespaces
    "avahi-daemon avahi-daemon" # Avahi beside the server on 5353 (Raspberry Pi OS's default)
    "avahi-utils avahi-browse"  # what a person would browse the LAN with
    "dbus-daemon dbus-daemon"   # avahi-daemon's private bus in the namespace
    "util-linux setpriv"        # the DaemonSet's init container, run with CHOWN alone
    "ffmpeg ffmpeg"             # the camera tests' clips, made from the shared photos
    "gstreamer1.0-tools gst-inspect-1.0" # shows which GStreamer elements are there (below)
)
# Libraries and plugins have no command of their own: a package and a test that it works.
# The camera tests' RTSP server is GStreamer's, driven from the system's python3 through GI.
gi='import gi; gi.require_version("GstRtspServer", "1.0"); from gi.repository import GstRtspServer'
probes=(
    "python3-gi|/usr/bin/python3 -c 'import gi'"
    "gir1.2-gst-rtsp-server-1.0|/usr/bin/python3 -c '$gi'"
    "gstreamer1.0-rtsp|/usr/bin/python3 -c '$gi'"
    "gstreamer1.0-plugins-base|gst-inspect-1.0 --exists playbin"
    "gstreamer1.0-plugins-good|gst-inspect-1.0 --exists qtdemux"   # and rtph264pay
    "gstreamer1.0-plugins-bad|gst-inspect-1.0 --exists h264parse"
)
# kubectl renders the Kubernetes manifests. Any kubectl will do; Debian's package conflicts with
# other kubectl packages (a cloud SDK's), so it is only asked for when no kubectl is installed.
command -v kubectl >/dev/null || needs+=("kubernetes-client kubectl")
missing=()
for need in "${needs[@]}"; do
    read -r package command <<<"$need"
    # /usr/sbin: mosquitto and avahi-daemon live there, outside a normal user's PATH.
    command -v "$command" >/dev/null || [ -x "/usr/sbin/$command" ] || missing+=("$package")
done
for probe in "${probes[@]}"; do
    package=${probe%%|*}
    bash -c "${probe#*|}" >/dev/null 2>&1 || missing+=("$package")
done
mapfile -t missing < <(printf '%s\n' "${missing[@]}" | awk 'NF && !seen[$0]++')
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
    echo "test-deps.sh: the tests need Debian packages that are missing: ${missing[*]}" >&2
    echo "  run: sudo apt-get install -y --no-install-suggests ${missing[*]}" >&2
    exit 1
fi
echo "test-deps.sh: installing ${missing[*]}" >&2
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-suggests "${missing[@]}"
