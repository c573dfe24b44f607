"""Service configuration: `EDGE_*` environment variables, mirrored by CLI flags.

`Settings` is composed of one pydantic model per section, each in its own module beside this
one; every field is `EDGE_<NAME>` in the environment, whatever its section. The sections are
also the narrow views the layers below take (`settings.section(MqttSettings)`), so a module
that needs the MQTT settings is not handed the whole configuration.
"""

from __future__ import annotations

from typing import TypeVar

from pydantic import BaseModel
from pydantic_settings import BaseSettings, SettingsConfigDict

from .http import HttpSettings
from .lan import LanSettings, MdnsMode
from .learning import LearningSettings
from .limits import LimitSettings
from .model import DEFAULT_MODEL, ModelSettings
from .mqtt import MqttSettings
from .recognition import FaceSettings

__all__ = ["DEFAULT_MODEL", "SECTIONS", "MdnsMode", "Settings"]

SectionT = TypeVar("SectionT", bound=BaseModel)

# In the order the settings reference lists them.
SECTIONS: tuple[type[BaseModel], ...] = (
    ModelSettings,
    LimitSettings,
    HttpSettings,
    MqttSettings,
    LanSettings,
    LearningSettings,
    FaceSettings,
)


# The sections are listed last-first: pydantic orders inherited fields from the last base on,
# which keeps each section's fields together and in the reference's order.
class Settings(
    FaceSettings,
    LearningSettings,
    LanSettings,
    MqttSettings,
    HttpSettings,
    LimitSettings,
    ModelSettings,
    BaseSettings,
):
    """Every knob of the service; each field is `EDGE_<NAME>` in the environment."""

    model_config = SettingsConfigDict(env_prefix="EDGE_", extra="forbid", validate_default=True)

    def section(self, kind: type[SectionT]) -> SectionT:
        """This configuration's fields of one section, as that section's own model."""
        return kind.model_validate({name: getattr(self, name) for name in kind.model_fields})
