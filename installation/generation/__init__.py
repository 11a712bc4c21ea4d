"""generation/: from prompt, settings and camera frame to a generated frame. Which generator a
show runs (choice.py), the worker thread that runs it and falls back to the preview, the
preview itself, and engine/: model lookup and loading, the streaming engine, the tiny test
model. Imports core/ only; only engine/ imports torch and diffusers."""
