"""Admin API for platform operators: onboarding, suspension, closure, export."""
