"""Wiring: telephone audio codecs, TTS, the CLI and (later) the Twilio/SIP front doors."""
