"""KServe v2 / Open Inference Protocol: schemas, the binary tensor codec, the inference
routes and the model repository extension.
"""
