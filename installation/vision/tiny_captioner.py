"""A tiny random-weight captioner folder (BLIP or GIT), for tests and weightless demos: laid out
as `save_pretrained` lays out the real model (config.json, model.safetensors, the processor and
tokenizer files), so `load_captioner` loads it with the very code that loads BLIP-base.

Its tokenizer is a BERT WordPiece vocabulary written here from a word list (BLIP and GIT both
use BERT's tokenizer, which no installed package ships). Its words are random but always words:
the output layer's bias keeps the special tokens (end of text among them) from being chosen, so
a caption runs to max_new_tokens and exercises the cleaning and the length bound.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

# Sizes: a 32 px image in 16 px patches (4 patches), width 32, one layer of each.
TINY_IMAGE_SIZE = 32
_WIDTH = 32
_MAX_TOKENS = 64
SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[DEC]")  # [DEC]: BLIP's start of caption
# The words of a caption, and what BLIP says that the cleaning must take out.
WORDS = tuple("""
a an the of in on at with and near by two three people person man woman child group standing sitting walking
looking holding wearing street room wall window floor chair table bench tree trees sky light dark red blue
green yellow white black grey brown orange purple shirt jacket dress hat hair face hands camera picture
image photo there is are arafed blurry small large close up front background night day indoor outdoor
""".split())


def write_tiny_captioner(dest: Path, family: str = "git", seed: int = 0) -> Path:
    """Writes a tiny random-weight BLIP ("blip") or GIT ("git") captioner into `dest` (created
    if needed) and returns `dest`. The same seed gives the same weights."""
    import torch
    import transformers

    from .captioner import quiet_transformers

    quiet_transformers()
    if family not in ("blip", "git"):
        raise ValueError(f"tiny captioner: family must be 'blip' or 'git', got {family!r}")
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    tokenizer = _write_tokenizer(dest, transformers)
    vision = dict(hidden_size=_WIDTH, intermediate_size=37, num_hidden_layers=1, num_attention_heads=4,
                  image_size=TINY_IMAGE_SIZE, patch_size=16)
    text = dict(vocab_size=len(tokenizer), hidden_size=_WIDTH, intermediate_size=37, num_hidden_layers=1,
                num_attention_heads=4, max_position_embeddings=_MAX_TOKENS, pad_token_id=tokenizer.pad_token_id)
    # Fork the RNG so writing a model never disturbs another thread's random stream.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        build = _tiny_blip if family == "blip" else _tiny_git
        model, processor, bias = build(transformers, tokenizer, vision, text)
    with torch.no_grad():  # words only: never a special token, so never the end of the caption
        bias[: len(SPECIAL_TOKENS)] = -1e4
    model.save_pretrained(dest, safe_serialization=True)
    processor.save_pretrained(dest)
    return dest


def _tiny_blip(transformers: Any, tokenizer: Any, vision: dict, text: dict) -> tuple[Any, Any, Any]:
    """(model, processor, the output layer's bias) of a tiny BLIP."""
    config = transformers.BlipConfig(
        vision_config=vision, projection_dim=_WIDTH,
        text_config=dict(text, bos_token_id=tokenizer.convert_tokens_to_ids("[DEC]"),
                         sep_token_id=tokenizer.sep_token_id, eos_token_id=tokenizer.sep_token_id))
    model = transformers.BlipForConditionalGeneration(config)
    image_processor = transformers.BlipImageProcessor(size={"height": TINY_IMAGE_SIZE, "width": TINY_IMAGE_SIZE})
    processor = transformers.BlipProcessor(image_processor=image_processor, tokenizer=tokenizer)
    return model, processor, model.text_decoder.cls.predictions.bias


def _tiny_git(transformers: Any, tokenizer: Any, vision: dict, text: dict) -> tuple[Any, Any, Any]:
    """(model, processor, the output layer's bias) of a tiny GIT."""
    config = transformers.GitConfig(vision_config=vision, **text, bos_token_id=tokenizer.cls_token_id,
                                    eos_token_id=tokenizer.sep_token_id)
    model = transformers.GitForCausalLM(config)
    image_processor = transformers.CLIPImageProcessor(
        size={"shortest_edge": TINY_IMAGE_SIZE}, crop_size={"height": TINY_IMAGE_SIZE, "width": TINY_IMAGE_SIZE})
    processor = transformers.GitProcessor(image_processor=image_processor, tokenizer=tokenizer)
    return model, processor, model.output.bias


def _write_tokenizer(dest: Path, transformers: Any) -> Any:
    """A BERT WordPiece tokenizer of WORDS, written to `dest` and read back as BLIP and GIT read theirs."""
    (dest / "vocab.txt").write_text("\n".join((*SPECIAL_TOKENS, *dict.fromkeys(WORDS))) + "\n", encoding="utf-8")
    config = {"tokenizer_class": "BertTokenizer", "do_lower_case": True, "model_max_length": _MAX_TOKENS,
              "bos_token": "[DEC]", "additional_special_tokens": ["[DEC]"]}
    (dest / "tokenizer_config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
    return transformers.AutoTokenizer.from_pretrained(dest)
