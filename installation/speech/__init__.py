"""speech/: from audio chunks to words to paint. Endpointing and voice activity cut the
stream into utterances; transcription (faster-whisper, openai-whisper) turns each into text;
the guards refuse what Whisper invents from noise; moderation and the words pipeline turn an
accepted transcript into a caption and the words for the prompt. Imports core/ (and the WAV
reader in inputs/)."""
