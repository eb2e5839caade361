"""kefu.tenants' service interface for other contexts.

Other contexts call these, never the contact-center tables:

* ``log_out_all_agents(session, *, tenant_id)`` — every agent goes offline and the
  tenant's waiting (queued or ringing) calls end with ``tenant_suspended``; the
  admin API runs it, with the media and socket work after commit, through
  ``runtime.tenant_deactivation_hooks`` (``CallFlow.agents_logged_out``).
* ``contact_center(runtime)`` — the running ACD and call flow of this process.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kefu.tenants.acd import Acd, log_out_all_agents
from kefu.tenants.callflow import CallFlow

__all__ = ["ContactCenter", "contact_center", "log_out_all_agents"]


@dataclass(frozen=True)
class ContactCenter:
    acd: Acd
    calls: CallFlow


def contact_center(runtime: Any) -> ContactCenter:
    return runtime.components["contact_center"]
