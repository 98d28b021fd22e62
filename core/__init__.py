"""The hotline's shared vocabulary: typed values, settings, errors and the clock. No I/O here."""
