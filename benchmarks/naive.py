"""The naive server the benchmark compares against: the design most model servers start as.

One shared interpreter called inline in an `async def` handler (so every request waits on the
event loop for the one before it, decode included), the whole photo decoded at full size and
resized with Pillow, the upload taken as a FastAPI `UploadFile`. Run it as
`python -m benchmarks.naive --model PATH --port N --threads N`.
"""

from __future__ import annotations

import argparse
import io
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import uvicorn
from fastapi import FastAPI, File, UploadFile
from PIL import Image

from edge_server.core.labels import load_labels
from edge_server.core.runtime import RuntimeChoice, load_backend


def create_app(model: Path, threads: int, runtime: RuntimeChoice) -> FastAPI:
    """The naive app around one interpreter."""
    backend = load_backend(runtime)
    interpreter: Any = backend.interpreter_class(model_path=str(model), num_threads=threads)
    interpreter.allocate_tensors()
    source = interpreter.get_input_details()[0]
    target = interpreter.get_output_details()[0]
    _, height, width, _ = source["shape"]
    labels = load_labels(model, None)
    app = FastAPI()

    @app.get("/readyz")
    async def readyz() -> dict[str, str]:
        return {"status": "ready"}

    @app.post("/classify")
    async def classify(image: Annotated[UploadFile, File()]) -> dict[str, Any]:
        data = await image.read()
        picture = Image.open(io.BytesIO(data)).convert("RGB")
        picture = picture.resize((int(width), int(height)), Image.Resampling.BILINEAR)
        interpreter.set_tensor(source["index"], np.asarray(picture)[np.newaxis])
        interpreter.invoke()
        scale = target["quantization"][0] or 1.0
        scores = interpreter.get_tensor(target["index"])[0].astype(np.float32) * scale
        best = np.argsort(scores)[::-1][:5]
        return {
            "predictions": [
                {"label": labels[i], "index": int(i), "score": float(scores[i])} for i in best
            ]
        }

    return app


def main() -> None:
    """Serve the naive app on 127.0.0.1."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--threads", type=int, required=True)
    parser.add_argument("--runtime", type=RuntimeChoice, default=RuntimeChoice.auto)
    args = parser.parse_args()
    app = create_app(args.model, args.threads, args.runtime)
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
