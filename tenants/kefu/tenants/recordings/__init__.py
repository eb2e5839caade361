"""kefu.tenants.recordings: recording management (search, signed playback links, retention, legal holds)."""
