"""The guards between Whisper and the prompt: what it invents from noise and silence (stock
phrases, annotations, loops) and its own confidence scores. An empty room's noise must never
become a prompt."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

from installation.core.messages import Decoded
from installation.show import SpeechConfig

# What Whisper invents from noise and silence: subtitle credits and stock phrases from its
# training data (YouTube captions, broadcast subtitles), per language. Rejected only when they
# are the whole transcript; a visitor saying "thank you for the flowers" is still heard.
HALLUCINATIONS: dict[str, frozenset[str]] = {
    "en": frozenset({
        "you", "thank you", "thanks", "thank you very much", "thank you so much", "thanks for watching",
        "thank you for watching", "thanks for watching and see you next time", "thank you for listening",
        "please subscribe", "subscribe", "please like and subscribe", "like and subscribe",
        "don't forget to like and subscribe", "see you next time", "see you in the next video",
        "i'll see you in the next video", "bye", "bye bye", "goodbye", "okay", "ok", "so", "uh", "um",
        "hmm", "mm", "oh", "ah", "the end", "i'm sorry", "silence", "music", "applause", "laughter",
        "subtitles by the amara org community", "transcribed by", "transcription by castingwords",
        "subtitles by", "captions by", "you you", "thank you thank you",
    }),
    "ko": frozenset({
        "시청해주셔서 감사합니다", "시청해 주셔서 감사합니다", "시청 해주셔서 감사합니다", "시청해주셔서 고맙습니다",
        "감사합니다", "고맙습니다", "감사합니다 감사합니다", "구독과 좋아요 부탁드립니다", "구독 좋아요 부탁드립니다",
        "좋아요와 구독 부탁드립니다", "구독과 좋아요 알림설정 부탁드립니다", "다음 영상에서 만나요",
        "다음 시간에 만나요", "오늘도 시청해주셔서 감사합니다", "mbc 뉴스 이덕영입니다", "mbc 뉴스 김성현입니다",
        "자막 제공 및 자막 편집", "한글자막 by 한효정", "네", "아", "음", "어", "안녕히 계세요", "끝",
    }),
    "ja": frozenset({"ご視聴ありがとうございました", "ありがとうございました", "チャンネル登録お願いします"}),
    "zh": frozenset({"谢谢观看", "请订阅", "字幕由amara org社区提供", "明镜与点点栏目"}),
}
# "[Music]", "(upbeat music)", "*applause*", "♪": sound descriptions, not words said.
_ANNOTATIONS = re.compile(r"\[[^\]]*\]|\([^)]*\)|\*[^*]*\*|[♪♫]")
_WORD = re.compile(r"[^\W_]+")


def _phrase_key(text: str) -> str:
    """Lower case, words only, single spaces: how phrases are compared."""
    return " ".join(_WORD.findall(text.lower()))


_ALL_KNOWN = frozenset().union(*HALLUCINATIONS.values())
_ALL_KNOWN_NOSPACE = frozenset(k.replace(" ", "") for k in _ALL_KNOWN)


def rejection_reason(text: str, language: str | None = None, extra: Sequence[str] = ()) -> str | None:
    """Why a transcript should not become a prompt ("empty", "no words", "annotation",
    "hallucination", "repetition"), or None if it is credible. Every language's list is
    consulted (Whisper's detected language is itself unreliable on noise); Korean spacing is
    free, so phrases also match with the spaces removed."""
    stripped = text.strip()
    if not stripped:
        return "empty"
    if not _WORD.search(stripped):
        return "no words"
    words = _WORD.findall(_ANNOTATIONS.sub(" ", stripped).lower())
    if not words:
        return "annotation"
    key = " ".join(words)
    extras = {_phrase_key(p) for p in extra}
    if key in _ALL_KNOWN or key in extras or key.replace(" ", "") in _ALL_KNOWN_NOSPACE:
        return "hallucination"
    if len(words) >= 6 and len(set(words)) <= max(1, len(words) // 4):
        return "repetition"  # "the the the the the the": Whisper looping on noise
    return None


def guard_reason(decoded: Decoded, cfg: SpeechConfig) -> str | None:
    """The layered guards after endpointing: Whisper's own confidence (its rule for "this
    was silence": no-speech probability high *and* the text unsure), text it produced with
    very low confidence, text that repeats itself, then the phrase lists."""
    if not all(math.isfinite(v) for v in (decoded.no_speech_prob, decoded.avg_logprob, decoded.compression_ratio)):
        return "no confidence"  # a broken model (NaN scores) must not slip through every comparison
    if decoded.no_speech_prob > cfg.no_speech_threshold and decoded.avg_logprob < cfg.logprob_threshold:
        return "no speech"
    if decoded.avg_logprob < cfg.logprob_threshold - 0.5:
        return "unsure"
    if decoded.compression_ratio > cfg.compression_ratio_threshold:
        return "repetition"
    return rejection_reason(decoded.text, decoded.language, cfg.hallucination_phrases)
