"""The diffusion engine: model lookup and fetching, the diffusers generator, the tiny test model.

This package is the only place that imports torch, diffusers and transformers, and only inside
functions, so importing `installation.generation.engine.models` stays cheap (stdlib + huggingface_hub).
"""
