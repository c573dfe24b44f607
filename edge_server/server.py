"""Running the app under uvicorn: load first, so a bad model fails before the port opens."""

from __future__ import annotations

from types import FrameType

import uvicorn

from .api import create_app
from .classifier import Classifier, decode_pool
from .settings import Settings
from .specs import ModelSpec, model_specs


class Server(uvicorn.Server):
    """uvicorn's server, exiting 0 after a graceful shutdown on SIGTERM or SIGINT.

    uvicorn re-raises the signal once shut down, so the process would die by it (status 143
    under Docker, a "killed" service to supervisors) although every request was answered.
    """

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        self._captured_signals.clear()


def serve(settings: Settings) -> int:
    """Load the models, then serve until a signal; the exit status of the process."""
    specs = model_specs(settings)  # every name and option checked before the first load
    decoders = decode_pool()
    loaded: list[tuple[ModelSpec, Classifier]] = []
    try:
        for spec in specs:
            loaded.append((spec, Classifier.load(spec.settings, name=spec.name, decoders=decoders)))
    except BaseException:
        for _, classifier in loaded:
            classifier.close()
        decoders.shutdown()
        raise
    app = create_app(settings, models=loaded, decoders=decoders)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        timeout_graceful_shutdown=int(settings.shutdown_timeout),
    )
    server = Server(config)
    server.run()  # the app closes the models and the decode pool when it shuts down
    return 0 if server.started else 1
