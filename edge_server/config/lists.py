"""Comma-separated settings, parsed once into lists.

An environment variable holds one string; `EDGE_MODEL=a,b` is two models. pydantic-settings
would read a list field as JSON, so these fields opt out of that (`NoDecode`) and split here:
no other module splits a setting by hand.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BeforeValidator
from pydantic_settings import NoDecode


def split_list(value: object) -> object:
    """The non-empty, stripped items of a comma-separated string; anything else unchanged."""
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


CommaList = Annotated[list[str], NoDecode, BeforeValidator(split_list)]
"""A list setting written `a,b,c` in the environment and on the command line."""
