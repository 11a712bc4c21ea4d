"""Jadong: a runtime for interactive AI art installations.

Only `installation.generation.engine` imports torch and diffusers, so everything else starts fast.
"""

__version__ = "0.1.0"
