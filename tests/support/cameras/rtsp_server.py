"""An RTSP server for tests: serves an H.264 .mp4 at rtsp://127.0.0.1:PORT/PATH.

Run with the system's python3 (GStreamer's GI bindings come from Debian, not the venv):
    /usr/bin/python3 rtsp_server.py CLIP PORT PATH [USER PASSWORD]
Debian ships GStreamer's RTSP server library but not its `test-launch` example; this is that
example with Basic auth. Each client gets its own pipeline from the clip's start, paced in real
time; at the clip's end the stream ends. Prints "ready" once it listens.
"""

import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402

clip, port, path, *login = sys.argv[1:]
Gst.init(None)
server = GstRtspServer.RTSPServer()
server.set_address("127.0.0.1")
server.set_service(port)
factory = GstRtspServer.RTSPMediaFactory()
factory.set_launch(
    f'( filesrc location="{clip}" ! qtdemux ! h264parse config-interval=-1 '
    "! rtph264pay name=pay0 pt=96 )"
)
if login:
    auth = GstRtspServer.RTSPAuth()
    token = GstRtspServer.RTSPToken()
    token.set_string("media.factory.role", "viewer")
    auth.add_basic(GstRtspServer.RTSPAuth.make_basic(*login), token)
    server.set_auth(auth)
    permissions = GstRtspServer.RTSPPermissions()
    permissions.add_permission_for_role("viewer", "media.factory.access", True)
    permissions.add_permission_for_role("viewer", "media.factory.construct", True)
    factory.set_permissions(permissions)
server.get_mount_points().add_factory(f"/{path}", factory)
if server.attach(None) == 0:
    sys.exit(f"cannot listen on 127.0.0.1:{port}")
print("ready", flush=True)
GLib.MainLoop().run()
