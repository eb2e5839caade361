"""Tables of recording management (migration 0013)."""
