"""The recording store as kefu.tenants reaches it.

kefu.webrtc builds the store (local folder or S3) and offers it as
``runtime.components["recordings"]``; kefu.tenants never imports kefu.webrtc.  A
job sees settings but no runtime, so ``install()`` remembers which runtime serves
which settings, and the retention job asks ``store_for_settings(job.settings)``.
The runtime is held weakly: a stopped runtime (tests build many) is not kept alive.
"""

from __future__ import annotations

import weakref
from typing import Any

from kefu.platform.runtime import Runtime
from kefu.platform.settings import Settings

_runtimes: dict[Settings, weakref.ref[Runtime]] = {}


def remember_runtime(runtime: Runtime) -> None:
    _runtimes[runtime.settings] = weakref.ref(runtime)


def store_of(runtime: Runtime) -> Any | None:
    return runtime.components.get("recordings")


def store_for_settings(settings: Settings) -> Any:
    """The store of the runtime built with these settings; RuntimeError if this process has none."""
    ref = _runtimes.get(settings)
    runtime = ref() if ref is not None else None
    store = store_of(runtime) if runtime is not None else None
    if store is None:
        raise RuntimeError("no recording store in this process (kefu.webrtc's install registers it)")
    return store
