"""Imports every context's models so ``Base.metadata`` is complete (Alembic, tests)."""

from kefu.platform.db.base import Base


def load_all_models() -> None:
    import kefu.platform.models  # noqa: F401
    import kefu.platform.identity.models  # noqa: F401
    import kefu.platform.events.models  # noqa: F401
    import kefu.tenants.models  # noqa: F401
    import kefu.tenants.qa.models  # noqa: F401
    import kefu.tenants.recordings.models  # noqa: F401
    import kefu.tenants.reports.schedules  # noqa: F401
    import kefu.billing.models  # noqa: F401


def metadata():  # type: ignore[no-untyped-def]
    load_all_models()
    return Base.metadata
