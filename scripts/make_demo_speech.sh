#!/usr/bin/env bash
# Makes the demo microphone input: espeak-ng saying one wish, with 1.5 s of silence before
# and after, as 16 kHz mono 16-bit PCM (what a microphone source delivers), and its words.
# Reproducible: the same espeak-ng and ffmpeg give the same bytes (-bitexact, no metadata).
set -euo pipefail
cd "$(dirname "$0")/.."

TEXT="${1:-a red fox running through the snowy forest}"
OUT_WAV="assets/demo_speech.wav"
OUT_TXT="assets/demo_speech.txt"

for tool in espeak-ng ffmpeg; do
  command -v "$tool" >/dev/null || { echo "make_demo_speech: $tool is missing (apt-get install $tool)" >&2; exit 1; }
done

mkdir -p assets
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

# 150 words a minute: Whisper understands espeak far better than at its default speed.
espeak-ng -v en-us -s 150 -w "$tmp/voice.wav" "$TEXT"
ffmpeg -nostdin -loglevel error -y -i "$tmp/voice.wav" \
  -af "aresample=16000,adelay=1500:all=1,apad=pad_dur=1.5" \
  -ar 16000 -ac 1 -sample_fmt s16 -c:a pcm_s16le \
  -map_metadata -1 -fflags +bitexact -flags:a +bitexact \
  "$OUT_WAV"
printf '%s\n' "$TEXT" > "$OUT_TXT"
echo "wrote $OUT_WAV ($(ffprobe -v error -show_entries format=duration -of csv=p=0 "$OUT_WAV") s) and $OUT_TXT"
