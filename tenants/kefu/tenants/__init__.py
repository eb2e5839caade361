"""kefu.tenants: the contact-center domain of one tenant (directory, ACD, calls, pages)."""
