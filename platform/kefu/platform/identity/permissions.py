"""Roles and the per-action permissions each grants.

Handlers name the permission they need (``requires("acd.queues.write")``);
a role is only ever a bundle of permissions.  Platform operators act through
OAuth2 scopes (``platform:tenants.read`` …), never through tenant roles.
"""

from __future__ import annotations

from kefu.platform.models import Role

TENANT_PERMISSIONS: dict[Role, frozenset[str]] = {
    Role.TENANT_ADMIN: frozenset(
        {
            "directory.users.read",
            "directory.users.write",
            "directory.roles.write",
            "acd.queues.read",
            "acd.queues.write",
            "acd.agents.read",
            "acd.agents.write",
            "acd.agents.supervise",
            "entrypoints.read",
            "entrypoints.write",
            "ivr.flows.read",
            "ivr.flows.write",
            "calls.read",
            "recordings.read",
            "audit.read",
            "identity.sso.write",
            "identity.clients.write",
            "events.read",
            "reports.read",
            "reports.manage",
            "billing.read",
            "billing.write",
            "recordings.manage",
            "qa.manage",
            "qa.evaluate",
            "qa.read",
        }
    ),
    Role.SUPERVISOR: frozenset(
        {
            "directory.users.read",
            "acd.queues.read",
            "acd.agents.read",
            "acd.agents.supervise",
            "entrypoints.read",
            "ivr.flows.read",
            "calls.read",
            "recordings.read",
            "reports.read",
            "qa.read",
        }
    ),
    Role.QA_REVIEWER: frozenset({"calls.read", "recordings.read", "qa.evaluate", "qa.read", "acd.agents.read", "acd.queues.read"}),
    Role.AGENT: frozenset({"agent.desktop", "calls.own.read", "qa.own"}),
    Role.REPORT_VIEWER: frozenset({"reports.read", "calls.read"}),
    # Platform administrators work through the operator API with scopes; inside a
    # tenant the role grants nothing extra.
    Role.PLATFORM_ADMIN: frozenset(),
}

PLATFORM_SCOPES = frozenset(
    {
        "platform:tenants.read",
        "platform:tenants.write",
        "platform:tenants.export",
        "platform:billing.read",
        "platform:billing.write",
    }
)

# Scopes a tenant may give its integration clients: the tenant permissions
# that make sense for a machine.
INTEGRATION_SCOPES = frozenset({"calls.read", "recordings.read", "acd.queues.read", "acd.agents.read", "directory.users.read", "events.read", "reports.read"})


def permissions_for(roles: frozenset[str] | set[str]) -> frozenset[str]:
    granted: set[str] = set()
    for role in roles:
        try:
            granted |= TENANT_PERMISSIONS[Role(role)]
        except ValueError:
            continue
    return frozenset(granted)
