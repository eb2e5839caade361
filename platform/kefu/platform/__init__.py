"""kefu.platform: the shared, tenant-isolated core (settings, database, auth, events, admin API)."""
