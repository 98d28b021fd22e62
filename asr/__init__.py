"""Speech in: VAD, streaming recognition (vosk, whisper), prosody and model management."""
