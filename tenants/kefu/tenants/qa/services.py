"""What other contexts may use of quality assurance.

* ``call_serial(call_id, started_at)`` — a call's serial number (``YYYYMMDDHHMMSS-<8 hex>``, UTC).
* ``recording_in_library(session, tenant_id=..., recording_id=...)`` — whether a recording
  belongs to a call in the exemplary-call library: agents (``qa.own``) may play those
  although the calls are not their own (the recordings context asks before it hands an
  agent a playback link).
"""

from kefu.tenants.qa.calls import call_serial
from kefu.tenants.qa.library import recording_in_library

__all__ = ["call_serial", "recording_in_library"]
