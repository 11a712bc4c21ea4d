"""What a gallery agrees to by running the models Jadong knows: the fetch command prints it
before downloading, and every capture names it beside the model (control/capture.py). Here in
core/ because both the engine and the control room read it, and neither may import the other.

Checked against the model cards in 2025; the cards are the authority, so each entry ends with
the card's link. SD-Turbo was released under the Non-Commercial Research Community License and
moved to the Community License (free below USD 1M annual revenue) in 2024; SDXL-Turbo's card
still names the non-commercial licence.
"""

from __future__ import annotations

MODEL_LICENCES: dict[str, str] = {
    "stabilityai/sd-turbo": (
        "Stability AI Community License (first released under the Stability AI Non-Commercial "
        "Research Community License); https://huggingface.co/stabilityai/sd-turbo"
    ),
    "stabilityai/sdxl-turbo": (
        "Stability AI Non-Commercial Research Community License (sai-nc-community); "
        "https://huggingface.co/stabilityai/sdxl-turbo"
    ),
    "madebyollin/taesd": "MIT; https://huggingface.co/madebyollin/taesd",
}


def model_licence(model: str) -> str:
    """The licence of a known model id, or "" (a local folder or file: the show says, in
    [provenance] model_licence)."""
    return MODEL_LICENCES.get(model.strip(), "")
