"""Tables of quality assurance (migration 0012)."""
