"""Keeping what diffusers and transformers print while a model loads or is written off the
console: their tqdm progress bars ("Loading pipeline components", "Loading weights", "Writing
model shards") and transformers' note that torchvision is missing. A show's console is read by
gallery staff; these lines say nothing they can act on, and the engine says what matters
(loaded, on which device, in how long) itself.

Only noise is removed: the libraries' warnings and errors still reach the log.
"""

from __future__ import annotations

import logging

from installation.core.downloads import download_allowed

# transformers warns once per image-processor class that it falls back to the PIL backend
# because torchvision is not installed. The PIL backend is what Jadong uses (the [safety]
# checker's CLIPImageProcessor), so the fallback is harmless.
_TORCHVISION_FALLBACK = "requires torchvision (not installed)"


class _DropTorchvisionFallback(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return _TORCHVISION_FALLBACK not in record.getMessage()


_FILTER = _DropTorchvisionFallback()


def quiet_model_loading() -> None:
    """Switches the noise off for this process. Idempotent; cheap after the first call.
    Progress bars of downloads stay on where a show may download (JADONG_ALLOW_DOWNLOAD=1)."""
    logger = logging.getLogger("transformers.utils.import_utils")  # a logger's filters see only its own records
    if _FILTER not in logger.filters:
        logger.addFilter(_FILTER)
    import tqdm
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    # Every tqdm object, even a disabled one (a pipeline's per-call bar), starts tqdm's monitor
    # thread, which then lives as long as the process; with the bars off it has nothing to watch.
    tqdm.tqdm.monitor_interval = 0
    diffusers_logging.disable_progress_bar()
    transformers_logging.disable_progress_bar()  # also huggingface_hub's, process-wide
    if download_allowed():
        from huggingface_hub.utils import enable_progress_bars

        enable_progress_bars()
