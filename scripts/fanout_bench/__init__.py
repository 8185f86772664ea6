"""Parts of ``scripts/bench``, the fan-out benchmark: the flood upstream, the minimal relay, the client swarm.

Not part of tickfan: nothing here is imported by a tier, and nothing here imports a tier.
"""
