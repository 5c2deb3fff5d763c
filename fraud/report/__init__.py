"""The /report page: stored looks into series, charts and server-side SVG.

Reads experiment and stats only; no storage, HTTP or bentoml.
"""
