"""Settings: one pydantic model per section, composed into `Settings`; every `EDGE_*`
variable is parsed and checked here, once.
"""
