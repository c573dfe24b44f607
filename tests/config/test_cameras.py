"""The camera settings: EDGE_CAMERAS pairs, [cameras.NAME] tables, and redaction."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from edge_server.config.cameras import CameraTable, camera_configs, parse_cameras, redact
from edge_server.config.settings import Settings


@pytest.mark.parametrize(
    ("url", "redacted"),
    [
        ("rtsp://admin:s3cr%40t@192.168.1.30:554/sub", "rtsp://admin:***@192.168.1.30:554/sub"),
        ("rtsp://admin@192.168.1.30/sub", "rtsp://admin@192.168.1.30/sub"),
        ("http://192.168.1.31:81/stream", "http://192.168.1.31:81/stream"),
        (
            "http://cam/cgi-bin/api.cgi?cmd=Snap&user=admin&password=abc",
            "http://cam/cgi-bin/api.cgi?cmd=Snap&user=admin&password=***",
        ),
        ("http://cam/snap.jpg?token=abc123", "http://cam/snap.jpg?token=***"),
        ("rtsp://u:p@[::1", "rtsp://***"),
        ("rtsp://viewer:p@ss:w%rd@10.0.0.2:554/cam", "rtsp://viewer:***@10.0.0.2:554/cam"),
    ],
)
def test_redact_hides_passwords_and_query_credentials(url: str, redacted: str) -> None:
    """redact() replaces a password and a credential in the query with ***, nothing else."""
    assert redact(url) == redacted


def test_parse_cameras_reads_name_url_pairs() -> None:
    """EDGE_CAMERAS is comma-separated name=URL pairs, spaces around them ignored."""
    assert parse_cameras(" front=rtsp://u:p@10.0.0.2/sub , door=http://10.0.0.3:81/stream,") == {
        "front": "rtsp://u:p@10.0.0.2/sub",
        "door": "http://10.0.0.3:81/stream",
    }


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("front", "is not name=URL"),
        ("front=ftp://u:hunter2@10.0.0.2/x", "starts with rtsp://"),
        ("front door=rtsp://u:hunter2@10.0.0.2/x", "must be letters"),
        ("a=rtsp://u:hunter2@h/x,a=rtsp://h/y", "given twice"),
        ("a=rtsp://u:hunter2@h:port/x", "not a valid URL"),
    ],
)
def test_bad_cameras_setting_is_named_without_its_password(value: str, message: str) -> None:
    """A bad EDGE_CAMERAS stops the settings with the problem named and the password hidden
    (pydantic's own text repeats the input; the CLI prints the messages, as for EDGE_MQTT_URL)."""
    with pytest.raises(ValidationError) as caught:
        Settings(cameras=value)
    messages = " ".join(error["msg"] for error in caught.value.errors())
    assert message in messages
    assert "hunter2" not in messages


def test_table_wins_field_by_field_over_the_environment() -> None:
    """A [cameras.NAME] table overrides EDGE_CAMERAS's URL and the defaults it sets, no more."""
    configs = camera_configs(
        {"front": "rtsp://u:p@10.0.0.2/main", "door": "http://10.0.0.3:81/stream"},
        {
            "front": CameraTable(url="rtsp://u:p@10.0.0.2/sub", fps=2, labels=["person"]),
            "yard": CameraTable(
                url="http://10.0.0.4/capture", zones={"lawn": [(0, 0), (1, 0), (1, 1)]}
            ),
        },
    )
    assert list(configs) == ["front", "door", "yard"]
    assert configs["front"].url == "rtsp://u:p@10.0.0.2/sub"
    assert (configs["front"].fps, configs["front"].labels) == (2, ("person",))
    assert configs["front"].threshold == 0.7
    assert configs["door"].fps == 5
    assert configs["yard"].zones == {"lawn": ((0, 0), (1, 0), (1, 1))}


@pytest.mark.parametrize(
    ("table", "message"),
    [
        (CameraTable(fps=0.5, labels=[]), "labels"),
        (CameraTable(zones={"lawn": [(0, 0), (1, 1)]}), "at least 3 points"),
        (CameraTable(masks=[[(0, 0), (2, 0), (1, 1)]]), "outside 0-1"),
    ],
)
def test_bad_table_is_named_without_the_url(table: CameraTable, message: str) -> None:
    """A bad table field names the camera and the field, and never repeats the URL."""
    with pytest.raises(ValueError, match=message) as caught:
        camera_configs({"front": "rtsp://u:hunter2@10.0.0.2/sub"}, {"front": table})
    assert "front" in str(caught.value)
    assert "hunter2" not in str(caught.value)


def test_table_without_url_needs_the_environment() -> None:
    """A [cameras.NAME] table with no url and no EDGE_CAMERAS entry is a named error."""
    with pytest.raises(ValueError, match=r"\[cameras.yard\] has no url"):
        camera_configs({}, {"yard": CameraTable(fps=1)})


def test_camera_settings_never_show_the_password() -> None:
    """EDGE_CAMERAS is a secret: neither the settings' repr nor a config's repr shows it."""
    settings = Settings(cameras="front=rtsp://u:hunter2@10.0.0.2/sub")
    assert "hunter2" not in repr(settings)
    config = camera_configs(settings.camera_urls(), {})["front"]
    assert "hunter2" not in repr(config)
    assert config.redacted_url == "rtsp://u:***@10.0.0.2/sub"
