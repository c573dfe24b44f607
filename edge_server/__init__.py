"""edge-server: on-device image classification over HTTP with a quantized TFLite model."""

__version__ = "0.1.0"
