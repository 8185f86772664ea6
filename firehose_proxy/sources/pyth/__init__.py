"""Pyth Hermes as a firehose source (DESIGN §3): feeds mapped to clusters, price updates to ``PY`` events, the SSE
stream driven by demand, and a Hermes simulator that serves the same payloads with no network."""
