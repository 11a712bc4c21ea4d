"""A small CLIP-style byte-level BPE vocabulary, learned here from a word list.

A tiny random-weight diffusion model still needs a real tokenizer folder. CLIP's own 49k-token
vocabulary is not shipped with any package we depend on, so we learn a few hundred merges from
common English and art words, laid out exactly as CLIP's files are (byte alphabet, the same
with `</w>`, the merges, then the two special tokens), so transformers' `CLIPTokenizer` loads it.
"""

from __future__ import annotations

import collections
import json
from dataclasses import dataclass
from pathlib import Path

START_TOKEN = "<|startoftext|>"
END_TOKEN = "<|endoftext|>"
END_OF_WORD = "</w>"

# Words a show is likely to paint, plus the glue of English sentences. Whole words become
# single tokens, other text falls back to word pieces and bytes, as with the real CLIP vocab.
WORDS = """
a an the of and or in on at to for with from by into over under above below between through
is are was be been it its this that these those there here i you he she we they my your our
me him her them not no yes all some many more most very so as like than then when where who
what why how if but just only also even still again ever never always one two three four five
painting drawing sketch ink wash watercolor oil acrylic pastel charcoal pencil print woodcut
portrait landscape still life abstract surreal dream dreamy style art artwork photo photograph
illustration poster mural fresco mosaic collage texture brush stroke strokes canvas paper
light soft hard bright dark shadow shadows glow glowing shine shining sun sunlight moon
moonlight star stars sky cloud clouds rain snow storm wind fog mist haze dawn dusk sunset
sunrise morning evening night day noon midnight winter spring summer autumn fall season
red orange yellow green blue purple violet pink brown black white gray grey gold golden silver
copper bronze crimson scarlet amber teal cyan magenta indigo ivory pale deep warm cold cool
fire flame flames smoke ash ember ocean sea wave waves water river lake pond stream rain
forest tree trees wood woods leaf leaves flower flowers rose roses lily lotus grass field
meadow garden mountain mountains hill hills valley rock rocks stone desert sand beach island
city town street house home room window door wall roof bridge tower castle temple church
road path train car boat ship plane bird birds fish cat dog horse tiger dragon butterfly
man woman child children boy girl person people face eyes hand hands heart body figure
old young new ancient future past modern quiet loud calm wild gentle slow fast small big
large tiny huge tall long short round square beautiful strange lonely happy sad angry
love hope fear memory memories time space world earth planet universe galaxy dream
machine robot glass metal neon electric crystal ice frozen burning floating falling flying
dancing singing running walking sleeping standing sitting looking reaching turning
music song voice sound silence whisper echo story poem word words color colour colors
cinematic detailed highly realistic photorealistic render lighting sharp focus blur
quality high resolution masterpiece trending studio film grain vintage retro
korean seoul hanok hanbok mountain pine crane tiger magpie persimmon moon jar celadon
""".split()


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP's reversible map from bytes to printable unicode characters."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(
        range(ord("®"), ord("ÿ") + 1)
    )
    chars = printable[:]
    n = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + n)
            n += 1
    return dict(zip(printable, (chr(c) for c in chars)))


@dataclass(frozen=True)
class BpeVocab:
    vocab: dict[str, int]
    merges: list[tuple[str, str]]

    @property
    def bos_token_id(self) -> int:
        return self.vocab[START_TOKEN]

    @property
    def eos_token_id(self) -> int:
        return self.vocab[END_TOKEN]

    def write(self, folder: Path) -> None:
        """vocab.json and merges.txt in the layout CLIP's tokenizer folders use."""
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "vocab.json").write_text(json.dumps(self.vocab, ensure_ascii=False), encoding="utf-8")
        lines = ["#version: 0.2"] + [f"{a} {b}" for a, b in self.merges]
        (folder / "merges.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")


def _symbols(word: str, byte_map: dict[int, str]) -> tuple[str, ...]:
    chars = [byte_map[b] for b in word.lower().encode("utf-8")]
    chars[-1] += END_OF_WORD
    return tuple(chars)


def learn_bpe(words: list[str] | None = None) -> BpeVocab:
    """Learns merges until every word is one token. Ties go to the lexically smallest pair,
    so the vocabulary is the same on every run and machine."""
    byte_map = bytes_to_unicode()
    counts = collections.Counter(w.lower() for w in (WORDS if words is None else words) if w)
    corpus: dict[tuple[str, ...], int] = {}
    for word, n in counts.items():
        sym = _symbols(word, byte_map)
        corpus[sym] = corpus.get(sym, 0) + n

    merges: list[tuple[str, str]] = []
    while True:
        pairs: collections.Counter[tuple[str, str]] = collections.Counter()
        for sym, n in corpus.items():
            for pair in zip(sym, sym[1:]):
                pairs[pair] += n
        if not pairs:
            break
        best_count = max(pairs.values())
        best = min(p for p, c in pairs.items() if c == best_count)
        merges.append(best)
        joined = best[0] + best[1]
        new_corpus: dict[tuple[str, ...], int] = {}
        for sym, n in corpus.items():
            if len(sym) > 1 and best[0] in sym:
                out: list[str] = []
                i = 0
                while i < len(sym):
                    if i + 1 < len(sym) and sym[i] == best[0] and sym[i + 1] == best[1]:
                        out.append(joined)
                        i += 2
                    else:
                        out.append(sym[i])
                        i += 1
                sym = tuple(out)
            new_corpus[sym] = new_corpus.get(sym, 0) + n
        corpus = new_corpus

    alphabet = list(byte_map.values())
    tokens = alphabet + [c + END_OF_WORD for c in alphabet]
    seen = set(tokens)
    for a, b in merges:
        if a + b not in seen:
            seen.add(a + b)
            tokens.append(a + b)
    tokens += [START_TOKEN, END_TOKEN]
    return BpeVocab(vocab={t: i for i, t in enumerate(tokens)}, merges=merges)
