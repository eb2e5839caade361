"""Typed tenant events, the outbox, publishing and background jobs (Dramatiq)."""
