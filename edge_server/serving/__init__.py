"""The data plane every surface calls: the service (`Service.run`), the model repository,
model specs and the catalog, API keys, metrics and the answer schemas.
"""
