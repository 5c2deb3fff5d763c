"""fraudserve's product code: everything the service, training and the gate share.

Layers, top to bottom (checked by lint-imports, contracts in pyproject.toml):
api, serving -> report -> experiment -> store -> stats -> schema, config.
docs/architecture.md shows where each decision lives.
"""
