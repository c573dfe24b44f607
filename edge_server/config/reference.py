"""The settings reference page, generated from the section models' field descriptions.

`python -m edge_server.config.reference docs/reference/settings.md` writes it (`make docs`);
a test fails when a setting has no description or the page is stale.
"""

from __future__ import annotations

import sys
from enum import Enum
from pathlib import Path

from pydantic import BaseModel, SecretStr
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from .http import HttpSettings
from .lan import LanSettings
from .limits import LimitSettings
from .model import ModelSettings
from .mqtt import MqttSettings
from .settings import SECTIONS

TITLES: dict[type[BaseModel], str] = {
    ModelSettings: "Models",
    LimitSettings: "Request limits",
    HttpSettings: "HTTP",
    MqttSettings: "MQTT and Frigate",
    LanSettings: "LAN",
}

HEADER = """<!-- generated from edge_server/config by `make docs`; edit the field descriptions there -->
# Settings

Every setting is an environment variable `EDGE_<NAME>` and a flag of `edge-server serve`
(`--<name>` with dashes); a flag wins over the variable. Lists are comma-separated. A bad value
stops the start with the setting named ([Configuration](../configuration.md)).
"""


def default_text(field: FieldInfo) -> str:
    """A field's default as a reader would write it in the environment."""
    if field.default_factory is not None:
        return "the CPUs available" if "cpus" in repr(field.default_factory) else "computed"
    value = field.default
    if value is PydanticUndefined or value is None:
        return "unset"
    if isinstance(value, SecretStr):
        return "set"
    if isinstance(value, Enum):
        value = value.value
    if isinstance(value, list):
        return ",".join(str(v) for v in value) or "empty"
    if isinstance(value, bool):
        return "true" if value else "false"
    if value == "":
        return "empty"
    return str(value)


def section_title(section: type[BaseModel]) -> str:
    """The heading of a section: its model's docstring's first line."""
    doc = (section.__doc__ or section.__name__).strip()
    return doc.split("\n\n", 1)[0].replace("\n", " ")


def markdown() -> str:
    """The whole reference page."""
    parts = [HEADER]
    for section in SECTIONS:
        parts.append(f"\n## {TITLES[section]}\n\n{section_title(section)}\n")
        parts.append("\n| Variable | Default | What it sets |\n|---|---|---|\n")
        for field_name, field in section.model_fields.items():
            description = (field.description or "").replace("|", "\\|")
            default = default_text(field).replace("|", "\\|")
            shown = (
                default if default in ("unset", "empty", "the CPUs available") else f"`{default}`"
            )
            parts.append(f"| `EDGE_{field_name.upper()}` | {shown} | {description} |\n")
    return "".join(parts)


def main(argv: list[str]) -> int:
    """Write the page to the path given, or print it."""
    text = markdown()
    if argv:
        Path(argv[0]).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
