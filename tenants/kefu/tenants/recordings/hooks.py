"""Extension points of recording management that other packages fill in.

``qa_status_filters``: the recordings search's ``qa_status`` filter.  Recording
management does not own evaluations (kefu.tenants.qa does), so the QA package
registers, for each status, a function ``predicate(tenant_id)`` returning an SQL
boolean expression over ``kefu.tenants.models.Call`` (correlated to the searched
call), e.g.::

    from sqlalchemy import exists
    from kefu.tenants.models import Call
    from kefu.tenants.recordings.hooks import register_qa_status_filter

    def evaluated(tenant_id):
        return exists().where(
            Evaluation.tenant_id == tenant_id, Evaluation.call_id == Call.id, Evaluation.status == "submitted"
        )

    register_qa_status_filter("evaluated", evaluated)
    register_qa_status_filter("unevaluated", lambda tenant_id: ~evaluated(tenant_id))

``evaluated``: the call has at least one submitted evaluation; ``unevaluated``:
none.  A status nobody registered answers 400 ``qa_status_unavailable``; a status
that is not one of these two, 400 ``invalid_qa_status``.  Registering is
idempotent (the last registration of a status wins), so it can run in every
``install()``.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

from sqlalchemy import ColumnElement

QA_STATUSES = ("unevaluated", "evaluated")

QaStatusPredicate = Callable[[uuid.UUID], ColumnElement[bool]]

qa_status_filters: dict[str, QaStatusPredicate] = {}


def register_qa_status_filter(status: str, predicate: QaStatusPredicate) -> None:
    if status not in QA_STATUSES:
        raise ValueError(f"unknown QA status {status!r}: one of {', '.join(QA_STATUSES)}")
    qa_status_filters[status] = predicate
