"""Optional API keys: `Authorization: Bearer KEY` or `X-API-Key: KEY`, compared in constant time."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from ..config.settings import Settings
from ..core.errors import StartupError, Unauthorized


def _digest(key: str) -> bytes:
    # Equal-length digests make compare_digest's time independent of the key's length too.
    return hashlib.sha256(key.encode("utf-8")).digest()


@dataclass(frozen=True)
class ApiKeys:
    """The accepted keys (only their digests are kept); empty means no authentication."""

    digests: tuple[bytes, ...]

    @classmethod
    def from_settings(cls, settings: Settings) -> ApiKeys:
        """Keys from EDGE_API_KEY (comma-separated) and EDGE_API_KEY_FILE (one per line)."""
        keys: list[str] = []
        if settings.api_key is not None:
            keys += settings.api_keys
        if settings.api_key_file is not None:
            try:
                keys += settings.api_key_file.read_text(encoding="utf-8").splitlines()
            except (OSError, UnicodeDecodeError) as exc:
                raise StartupError(
                    f"cannot read the API key file {settings.api_key_file}: {exc}",
                    fix="make EDGE_API_KEY_FILE a readable UTF-8 file with one key per line",
                ) from exc
            if not any(k.strip() for k in keys):
                raise StartupError(
                    f"the API key file {settings.api_key_file} holds no key",
                    fix="write one key per line, or unset EDGE_API_KEY_FILE",
                )
        cleaned = [k.strip() for k in keys if k.strip()]
        short = [k for k in cleaned if len(k) < 16]
        if short:
            raise StartupError(
                f"{len(short)} API key(s) are shorter than 16 characters",
                fix="use long random keys, e.g. `python3 -c 'import secrets; "
                "print(secrets.token_urlsafe(32))'`",
            )
        return cls(tuple(_digest(k) for k in cleaned))

    @property
    def enabled(self) -> bool:
        return bool(self.digests)

    def check(self, authorization: str | None, x_api_key: str | None) -> None:
        """Pass, or raise 401. Every key is compared, so timing says nothing about which."""
        if not self.enabled:
            return
        candidate = x_api_key
        if authorization is not None:
            scheme, _, value = authorization.partition(" ")
            if scheme.lower() == "bearer":
                candidate = value.strip()
        if candidate:
            given = _digest(candidate)
            matched = False
            for digest in self.digests:
                matched |= hmac.compare_digest(given, digest)
            if matched:
                return
        raise Unauthorized(
            "a valid API key is required: send `Authorization: Bearer KEY` or `X-API-Key: KEY`",
            headers={"WWW-Authenticate": "Bearer"},
        )
