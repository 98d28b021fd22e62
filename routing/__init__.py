"""Live call state and agent routing (Redis)."""
