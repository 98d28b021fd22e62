"""The brain: understanding colloquial Mandarin and deciding what to say or do, as pure functions."""
