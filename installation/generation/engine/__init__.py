"""The diffusion engine: where models live and how they are fetched (models.py,
checkpoint_file.py), how a generator gets its pipeline (loading.py: device, dtype, safety
checker, offline rules), the two generators (diffusers_generator.py, stream_generator.py), the
streaming loop and its parts (stream.py, parts.py, schedulers.py, blending.py, cpu_layout.py),
and the tiny test model.

The only package that imports torch, diffusers and transformers. models.py and
checkpoint_file.py import none of them, and the generators only inside `load()`, so choosing a
generator (generation/choice.py) stays cheap.
"""
