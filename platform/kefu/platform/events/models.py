"""Tables of the events context (outbox lives in kefu.platform.models)."""
