"""kefu.tenants' service interface for other contexts.

Other contexts call these, never the contact-center tables:

* ``log_out_all_agents(session, *, tenant_id)`` — the admin API calls it when a
  tenant is suspended (agents go offline; calls ringing at them are re-queued).
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
