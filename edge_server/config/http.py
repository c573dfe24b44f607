"""The HTTP listener: address, connection defences, keys, CORS and logging."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field, FilePath, SecretStr, field_validator

from .lists import CommaList

LOG_LEVELS = ("critical", "error", "warning", "info", "debug", "trace")


class HttpSettings(BaseModel):
    """Where the service listens and how it guards its connections and routes."""

    host: str = Field("127.0.0.1", description="Address to listen on.")
    port: Annotated[int, Field(ge=0, le=65535)] = Field(8080, description="TCP port.")
    header_timeout: Annotated[float, Field(gt=0, le=3600)] = Field(
        10.0,
        description="Seconds a client has to send a request's headers (from connecting, or "
        "from the end of the previous answer); slower connections are closed.",
    )
    body_timeout: Annotated[float, Field(gt=0, le=3600)] = Field(
        10.0,
        description="Seconds a request body may stall (no bytes arrive) before the connection "
        "is closed.",
    )
    linger_bytes: Annotated[int, Field(ge=0)] = Field(
        64 * 1024 * 1024,
        description="Bytes of a request body read and thrown away after an answer given before "
        "the body was read (401, 404, 413...), so the client can finish sending and then read "
        "the answer (nginx's lingering close); a client still sending past them is cut off. "
        "0: close at once.",
    )
    linger_timeout: Annotated[float, Field(gt=0, le=3600)] = Field(
        30.0,
        description="Seconds at most spent reading and throwing away the rest of a body after "
        "an early answer (nginx's lingering_time); a pause of EDGE_BODY_TIMEOUT ends it sooner.",
    )
    keep_alive_timeout: Annotated[int, Field(ge=1, le=3600)] = Field(
        5, description="Seconds an idle keep-alive connection stays open between requests."
    )
    max_connections: Annotated[int, Field(ge=8, le=1_000_000)] = Field(
        1000,
        description="Open connections at most (lowered to fit the open-file limit); past it "
        "the connection waiting longest for its headers (else the oldest lingering after an "
        "early answer) is closed, or the new one gets 503.",
    )
    shutdown_timeout: Annotated[float, Field(ge=0, le=3600)] = Field(
        10.0, description="Seconds in-flight requests get to finish after SIGTERM."
    )
    api_key: SecretStr | None = Field(
        None, description="API key(s), comma-separated; unset = no authentication."
    )
    api_key_file: FilePath | None = Field(
        None, description="File with one API key per line (combined with EDGE_API_KEY)."
    )
    metrics_require_key: bool = Field(False, description="Whether /metrics needs the API key too.")
    cors_origins: CommaList = Field(
        [], description="Comma-separated origins allowed by CORS; empty = CORS off."
    )
    log_level: str = Field("info", description="uvicorn log level.")
    access_log: Literal["off", "on"] | Annotated[float, Field(ge=0, le=1)] = Field(
        "off",
        description="Access log lines for answered requests: off, on, or the fraction to log "
        "(0.01: one in a hundred). Errors (status >= 400) are always logged.",
    )

    @property
    def access_log_rate(self) -> float:
        """The fraction of successful requests given an access log line."""
        if isinstance(self.access_log, str):
            return 1.0 if self.access_log == "on" else 0.0
        return self.access_log

    @property
    def api_keys(self) -> list[str]:
        """The keys of EDGE_API_KEY, split once (EDGE_API_KEY_FILE is read by the service)."""
        if self.api_key is None:
            return []
        return self.api_key.get_secret_value().split(",")

    @field_validator("log_level")
    @classmethod
    def _known_log_level(cls, value: str) -> str:
        if value.lower() not in LOG_LEVELS:
            raise ValueError(f"must be one of {', '.join(LOG_LEVELS)}")
        return value.lower()
