"""Images, tensors and models: decoding, regions, quantization, labels, the runtime
boundary, owner threads, the loaded model and the decode memory budget. Knows nothing of
HTTP, MQTT, zeroconf or settings.
"""
