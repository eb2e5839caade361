"""Identity: passwords, tokens, OAuth2 clients, OIDC single sign-on, permissions."""
