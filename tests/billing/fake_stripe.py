"""A local test double for Stripe's API servers, speaking Stripe's real HTTP wire protocol.

What it is
----------
``FakeStripe`` is an in-memory HTTP server on 127.0.0.1 that answers the v1 API
calls a seat-billing system makes, the way Stripe's servers answer them for the
API version the project pins (``stripe.api_version``, "2026-10-28.endive").  The
billing code talks to it through the official ``stripe`` library over real HTTP
(``base_addresses={"api": server.url}``), so its requests, retries, idempotency
keys and timeouts are exercised exactly as in production.  It is a double for
Stripe's *servers* only: nothing of the ``stripe`` library is replaced.

Covered
-------
* Wire protocol: ``Authorization: Bearer <key>`` (401 otherwise), form-encoded
  bodies and query strings in Stripe's bracket notation (``items[0][price]``,
  ``metadata[k]``, ``expand[]``/``expand[0]``), JSON answers with ``Request-Id``
  and ``Stripe-Version`` headers, Stripe's error envelope and codes, ``expand``.
* Idempotency (POST + ``Idempotency-Key``, per API key, 24 h): a repeat with the
  same method, path and parameters replays the stored status and body with
  ``Idempotent-Replayed: true``; different parameters answer 400
  ``idempotency_error``; a repeat while the first is still executing answers 409
  ``idempotency_key_in_use``.  As at Stripe, nothing is stored for requests that
  failed parameter validation, were rate limited, or failed with 5xx.
* Request validation against the request shapes Stripe publishes, taken from the
  ``stripe`` library's generated TypedDict parameter classes (``stripe.params``):
  unknown parameters (``parameter_unknown``), missing required ones
  (``parameter_missing``), values that are not integers / booleans / one of an
  enum (``parameter_invalid_integer`` / ``parameter_invalid_boolean`` /
  ``parameter_invalid_string``) and empty strings for fields that cannot be unset
  (``parameter_invalid_empty``).  The library types enums as ``Literal[...] | str``
  only for forward compatibility; they are checked as the closed enums the API
  enforces.
* Endpoints (``iter_routes()``): POST /v1/customers, GET|POST /v1/customers/{id},
  POST /v1/products, GET /v1/products/{id}, POST /v1/prices, GET /v1/prices/{id},
  POST|GET /v1/billing/meters, POST /v1/billing/meter_events, POST /v1/subscriptions,
  GET|POST|DELETE /v1/subscriptions/{id}, POST /v1/subscription_items/{id},
  POST /v1/checkout/sessions (mode=setup), GET /v1/checkout/sessions/{id},
  POST /v1/billing_portal/sessions, GET /v1/invoices, GET /v1/invoices/{id},
  GET /v1/setup_intents/{id}.
* Object shapes of the pinned version, including its less obvious parts:
  ``current_period_start``/``current_period_end`` live on subscription items,
  an invoice names its subscription in ``parent.subscription_details``, invoice
  lines and items carry ``parent`` and ``pricing``, Checkout takes
  ``allowed_payment_method_types``, metered prices need ``recurring[meter]``,
  meter events have no ``id`` (their ``identifier`` is the key).
* Python helpers standing in for what happens outside the API (a customer
  finishing Checkout, Stripe issuing / collecting invoices), fault injection
  (5xx / 429 answers, slow answers, lost answers) and webhook event building and
  signing (``event``, ``sign``) with Stripe's exact ``Stripe-Signature`` scheme.

Deliberately not covered (each raises or is documented rather than faked)
--------------------------------------------------------------------------
* Any other endpoint, API version or live mode.  A request with a
  ``Stripe-Version`` other than the pinned one is refused: the double only knows
  that version's object shapes.
* Parameters that are valid for Stripe but whose effect the double does not
  model (trials, discounts, taxes, ``price_data``, payment/subscription Checkout
  modes, ...) are refused with 400 and code ``fake_stripe_unmodelled`` instead of
  being silently ignored.  ``payment_behavior`` and ``off_session`` are accepted,
  but subscriptions always start ``active`` and no invoice is issued at creation:
  tests issue invoices with ``create_invoice`` and settle them with
  ``pay_invoice`` / ``fail_invoice``; no card is ever charged.
* ``complete_checkout`` makes the new card the customer's invoice default unless
  told ``set_as_default=False``; real Stripe only attaches it (see its docstring).
* ``expand`` works on any field holding the id of a stored object (Stripe limits it
  to the fields its spec marks expandable) and otherwise answers Stripe's "This
  property cannot be expanded" error.
* Webhooks are not delivered; tests build and sign events with ``event`` and
  ``sign`` and post them to the application themselves.
* Prorations are one invoice item per quantity change (Stripe writes an "unused
  time" credit and a "remaining time" debit); amounts are rounded half away from
  zero.  Meter event errors that Stripe reports asynchronously (unknown meter or
  customer, bad value) are answered synchronously with 400 so mistakes surface in
  the test; identifiers stay unique for the server's lifetime (Stripe: at least
  24 h).
* Customers have no addresses, taxes or balances; payment methods are opaque
  cards created by ``complete_checkout`` / ``add_payment_method``.
"""

from __future__ import annotations

import calendar
import copy
import functools
import hashlib
import hmac
import json
import re
import secrets
import socket
import string
import threading
import time
import types
import typing
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal, Union
from urllib.parse import parse_qsl, unquote, urlsplit

import stripe
from stripe.params import (
    CustomerCreateParams,
    CustomerRetrieveParams,
    CustomerUpdateParams,
    InvoiceListParams,
    InvoiceRetrieveParams,
    PriceCreateParams,
    PriceRetrieveParams,
    ProductCreateParams,
    ProductRetrieveParams,
    SetupIntentRetrieveParams,
    SubscriptionCancelParams,
    SubscriptionCreateParams,
    SubscriptionItemUpdateParams,
    SubscriptionListParams,
    SubscriptionRetrieveParams,
    SubscriptionUpdateParams,
)
from stripe.params import billing as billing_params
from stripe.params import billing_portal as portal_params
from stripe.params import checkout as checkout_params

__all__ = [
    "API_VERSION",
    "FakeStripe",
    "Hang",
    "RecordedRequest",
    "StripeError",
    "add_interval",
    "coerce_params",
    "decode_params",
    "event",
    "iter_routes",
    "sign",
]

API_VERSION: str = stripe.api_version
DEFAULT_API_KEY = "sk_test_kefu"
IDEMPOTENCY_TTL_S = 24 * 3600
METER_EVENT_MAX_AGE_S = 35 * 24 * 3600
METER_EVENT_MAX_FUTURE_S = 5 * 60

# Keys the library's parameter classes share with its per-request options; they
# are never sent as parameters.
REQUEST_OPTION_KEYS = frozenset(
    {
        "api_key",
        "stripe_version",
        "stripe_account",
        "stripe_context",
        "max_network_retries",
        "idempotency_key",
        "content_type",
        "headers",
    }
)

JSON = dict[str, Any]


# --------------------------------------------------------------------------
# Errors


class StripeError(Exception):
    """An error answered in Stripe's error envelope ``{"error": {...}}``."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.code = code
        self.param = param

    def body(self) -> JSON:
        error: JSON = {"type": self.type, "message": self.message}
        if self.code is not None:
            error["code"] = self.code
            error["doc_url"] = f"https://stripe.com/docs/error-codes/{self.code.replace('_', '-')}"
        if self.param is not None:
            error["param"] = self.param
        return {"error": error}


def _missing(param: str) -> StripeError:
    return StripeError(400, f"Missing required param: {param}.", code="parameter_missing", param=param)


def _no_such(kind: str, object_id: str, *, param: str, status: int = 400) -> StripeError:
    return StripeError(status, f"No such {kind}: '{object_id}'", code="resource_missing", param=param)


def _unmodelled(param: str) -> StripeError:
    return StripeError(
        400,
        f"fake_stripe does not model '{param}': it is a valid Stripe parameter for this endpoint, "
        "but this test double would ignore its effect. Extend tests/billing/fake_stripe.py if Kefu needs it.",
        code="fake_stripe_unmodelled",
        param=param,
    )


# --------------------------------------------------------------------------
# Form decoding: Stripe's bracket notation into nested dicts and lists

_KEY_RE = re.compile(r"([^\[\]]+)((?:\[[^\[\]]*\])*)")
_SEGMENT_RE = re.compile(r"\[([^\[\]]*)\]")


def decode_params(pairs: list[tuple[str, str]]) -> JSON:
    """Decode ``[("items[0][price]", "price_1"), ("expand[]", "x")]`` into nested data.

    ``key[]`` appends to a list; hashes whose keys are exactly ``"0".."n-1"``
    become lists (that is how the library sends every list).
    """
    root: JSON = {}
    for key, value in pairs:
        match = _KEY_RE.fullmatch(key)
        if match is None:
            raise StripeError(400, f"Invalid parameter name: {key}", param=key)
        parts = [match.group(1), *_SEGMENT_RE.findall(match.group(2))]
        node: Any = root
        for depth, part in enumerate(parts):
            last = depth == len(parts) - 1
            if part == "":
                if not (last and isinstance(node, list)):
                    raise StripeError(400, f"Invalid array parameter: {key}", param=key)
                node.append(value)
                break
            if not isinstance(node, dict):
                raise StripeError(400, f"Invalid parameter structure: {key}", param=key)
            if last:
                if isinstance(node.get(part), (dict, list)):
                    raise StripeError(400, f"Invalid parameter structure: {key}", param=key)
                node[part] = value
                break
            wants_list = parts[depth + 1] == ""
            child = node.setdefault(part, [] if wants_list else {})
            if isinstance(child, str) or isinstance(child, list) != wants_list:
                raise StripeError(400, f"Invalid parameter structure: {key}", param=key)
            node = child
    return _listify(root)


def _listify(value: Any) -> Any:
    if isinstance(value, dict):
        converted = {key: _listify(item) for key, item in value.items()}
        if converted and set(converted) == {str(index) for index in range(len(converted))}:
            return [converted[str(index)] for index in range(len(converted))]
        return converted
    if isinstance(value, list):
        return [_listify(item) for item in value]
    return value


# --------------------------------------------------------------------------
# Validation against the library's published request shapes

_SCALARS: tuple[type, ...] = (bool, int, float, Decimal, str)


@functools.cache
def _fields_of(params_class: type) -> tuple[dict[str, Any], frozenset[str]]:
    """Resolved field types (without NotRequired/Required) and required names of a TypedDict.

    The annotations are forward-reference strings; they are resolved in the
    defining module.  Request-option keys are dropped before resolving (their
    annotations name types the library only imports for type checkers).
    """
    annotations = params_class.__annotations__
    options = REQUEST_OPTION_KEYS if REQUEST_OPTION_KEYS <= annotations.keys() else frozenset()
    own = {name: hint for name, hint in annotations.items() if name not in options}
    holder = type(params_class.__name__, (), {"__annotations__": own, "__module__": params_class.__module__})
    hints = typing.get_type_hints(holder, include_extras=True)
    fields: dict[str, Any] = {}
    required: set[str] = set()
    total = getattr(params_class, "__total__", True)
    for name, hint in hints.items():
        origin = typing.get_origin(hint)
        if origin is typing.NotRequired:
            fields[name] = typing.get_args(hint)[0]
        elif origin is typing.Required:
            fields[name] = typing.get_args(hint)[0]
            required.add(name)
        else:
            fields[name] = hint
            if total:
                required.add(name)
    return fields, frozenset(required)


def coerce_params(params: Mapping[str, Any], params_class: type) -> JSON:
    """Validate decoded parameters against a ``stripe.params`` class; return them typed.

    Integers become ``int``, booleans ``bool``, decimals ``Decimal``; raises
    ``StripeError`` (400) the way Stripe rejects a request.
    """
    return _coerce_hash(params, params_class, "")


def _path(parent: str, key: str | int) -> str:
    return f"{parent}[{key}]" if parent else str(key)


def _kind_of(value: Any) -> str:
    return "hash" if isinstance(value, dict) else "array" if isinstance(value, list) else "string"


def _is_typeddict(hint: Any) -> bool:
    # structural: the library's classes come from typing_extensions.TypedDict,
    # which typing.is_typeddict does not recognise
    return isinstance(hint, type) and issubclass(hint, dict) and hasattr(hint, "__required_keys__")


def _is_mapping(hint: Any) -> bool:
    """``Dict[str, X]`` or the library's ``UntypedStripeObject[X]`` (free-form keys such as metadata)."""
    origin = typing.get_origin(hint) or hint
    return (
        isinstance(origin, type) and issubclass(origin, (dict, stripe.StripeObject)) and not _is_typeddict(hint)
    )


def _wrong_kind(expected: str, value: Any, param: str) -> StripeError:
    return StripeError(400, f"Invalid {expected}: {param} must be a {expected}, not a {_kind_of(value)}", param=param)


def _empty(param: str) -> StripeError:
    return StripeError(
        400,
        f"You passed an empty string for '{param}'. We assume empty values are an attempt to unset a "
        f"parameter; however '{param}' cannot be unset. You should remove '{param}' from your request "
        "or supply a non-empty value.",
        code="parameter_invalid_empty",
        param=param,
    )


def _one_of(values: list[str]) -> str:
    if len(values) <= 2:
        return " or ".join(values)
    return ", ".join(values[:-1]) + f", or {values[-1]}"


def _coerce_hash(value: Any, params_class: type, param: str) -> JSON:
    if not isinstance(value, dict):
        raise _wrong_kind("hash", value, param)
    fields, required = _fields_of(params_class)
    result: JSON = {}
    for key, item in value.items():
        sub = _path(param, key)
        if key not in fields:
            raise StripeError(400, f"Received unknown parameter: {sub}", code="parameter_unknown", param=sub)
        result[key] = _coerce(item, fields[key], sub)
    for key in fields:
        if key in required and key not in value:
            raise _missing(_path(param, key))
    return result


def _coerce(value: Any, hint: Any, param: str) -> Any:
    origin = typing.get_origin(hint)
    if hint is Any or hint is object:
        return value
    if origin is Union or origin is types.UnionType:
        return _coerce_union(value, typing.get_args(hint), param)
    if origin is Literal:
        return _coerce_union(value, (hint,), param)
    if _is_typeddict(hint):
        return _coerce_hash(value, hint, param)
    if origin is list:
        (item_hint,) = typing.get_args(hint)
        if not isinstance(value, list):
            raise _wrong_kind("array", value, param)
        return [_coerce(item, item_hint, _path(param, index)) for index, item in enumerate(value)]
    if _is_mapping(hint):
        args = typing.get_args(hint)
        item_hint = args[-1] if args else str
        if isinstance(value, list):  # a hash whose keys happened to be 0..n-1
            value = {str(index): item for index, item in enumerate(value)}
        if not isinstance(value, dict):
            raise _wrong_kind("hash", value, param)
        return {
            key: item if item_hint is str and isinstance(item, str) else _coerce(item, item_hint, _path(param, key))
            for key, item in value.items()
        }
    if hint in _SCALARS:
        return _coerce_scalar(value, hint, param)
    raise TypeError(f"fake_stripe cannot validate {param!r}: unsupported annotation {hint!r}")


def _coerce_scalar(value: Any, hint: type, param: str) -> Any:
    if not isinstance(value, str):
        raise _wrong_kind("string", value, param)
    if value == "":
        raise _empty(param)
    if hint is str:
        return value
    if hint is bool:
        if value in ("true", "false"):
            return value == "true"
        raise StripeError(400, f"Invalid boolean: {value}", code="parameter_invalid_boolean", param=param)
    if hint is int:
        if re.fullmatch(r"-?\d+", value):
            return int(value)
        raise StripeError(400, f"Invalid integer: {value}", code="parameter_invalid_integer", param=param)
    try:
        number = Decimal(value)
    except InvalidOperation:
        number = Decimal("NaN")
    if not number.is_finite():
        raise StripeError(400, f"Invalid decimal: {value}", code="parameter_invalid_decimal", param=param)
    return float(number) if hint is float else number


def _coerce_union(value: Any, alternatives: tuple[Any, ...], param: str) -> Any:
    literals = [str(v) for alt in alternatives if typing.get_origin(alt) is Literal for v in typing.get_args(alt)]
    others = [alt for alt in alternatives if typing.get_origin(alt) is not Literal]
    if isinstance(value, str):
        if value in literals:
            return value
        if value == "":
            raise _empty(param)
        enum = [literal for literal in literals if literal != ""]
        scalars = sorted(
            (alt for alt in others if alt in _SCALARS and not (alt is str and enum)), key=_SCALARS.index
        )
        first_error: StripeError | None = None
        for alt in scalars:
            try:
                return _coerce_scalar(value, alt, param)
            except StripeError as error:
                first_error = first_error or error
        if first_error is not None:  # e.g. Literal['now'] | int: report the integer
            raise first_error
        if enum:
            raise StripeError(
                400,
                f"Invalid {param}: must be one of {_one_of(enum)}",
                code="parameter_invalid_string",
                param=param,
            )
        expected = "hash" if any(_is_typeddict(a) or _is_mapping(a) for a in others) else "array"
        raise _wrong_kind(expected, value, param)
    if isinstance(value, list):  # a list, or a hash whose keys happened to be 0..n-1
        candidates = [alt for alt in others if typing.get_origin(alt) is list]
        candidates += [alt for alt in others if _is_mapping(alt)]
    else:
        candidates = [alt for alt in others if _is_typeddict(alt) or _is_mapping(alt)]
    if not candidates:
        raise _wrong_kind("string", value, param)
    first_error = None
    for alt in candidates:
        try:
            return _coerce(value, alt, param)
        except StripeError as error:
            first_error = first_error or error
    assert first_error is not None
    raise first_error


# Parameters whose effect the double models, per endpoint (True: the whole
# subtree; a dict: only these sub-keys; a one-element list: each element).
Modelled = Mapping[str, Any]


def _check_modelled(params: Mapping[str, Any], modelled: Modelled, prefix: str = "") -> None:
    for key, value in params.items():
        sub = _path(prefix, key)
        rule = modelled.get(key)
        if rule is None:
            raise _unmodelled(sub)
        if isinstance(rule, list) and isinstance(value, list):
            for index, element in enumerate(value):
                if isinstance(element, dict):
                    _check_modelled(element, rule[0], _path(sub, index))
        elif isinstance(rule, dict) and isinstance(value, dict):
            _check_modelled(value, rule, sub)


# --------------------------------------------------------------------------
# Small helpers

_ALPHABET = string.ascii_letters + string.digits


def _new_id(prefix: str, length: int = 24) -> str:
    return f"{prefix}_" + "".join(secrets.choice(_ALPHABET) for _ in range(length))


def _copy(obj: Any) -> Any:
    return json.loads(json.dumps(obj))


def add_interval(timestamp: int, interval: str, count: int) -> int:
    """``timestamp`` moved by ``count`` intervals; months keep the day of month, clamped."""
    if interval == "day":
        return timestamp + count * 86400
    if interval == "week":
        return timestamp + count * 7 * 86400
    start = datetime.fromtimestamp(timestamp, tz=UTC)
    months = count * (12 if interval == "year" else 1)
    year_shift, month_index = divmod(start.month - 1 + months, 12)
    year, month = start.year + year_shift, month_index + 1
    day = min(start.day, calendar.monthrange(year, month)[1])
    return int(start.replace(year=year, month=month, day=day).timestamp())


def _round_half_away(value: Fraction) -> int:
    magnitude = int(abs(value) + Fraction(1, 2))
    return magnitude if value >= 0 else -magnitude


def _money(amount: int, currency: str) -> str:
    return f"${amount / 100:.2f}" if currency == "usd" else f"{amount / 100:.2f} {currency.upper()}"


def _mask_key(key: str) -> str:
    head, _, _ = key.rpartition("_")
    return f"{head}_{'*' * max(len(key) - len(head) - 5, 0)}{key[-4:]}" if head else "*" * len(key)


def _apply_metadata(current: Mapping[str, str], update: Any, param: str = "metadata") -> dict[str, str]:
    """Stripe's metadata semantics: merge keys, ``""`` deletes a key, ``metadata=""`` clears all."""
    if update is None:
        return dict(current)
    if update == "":
        return {}
    result = dict(current)
    for key, value in update.items():
        if len(key) > 40:
            raise StripeError(400, "Metadata keys can have a maximum length of 40 characters.", param=_path(param, key))
        if len(value) > 500:
            raise StripeError(
                400, "Metadata values can have a maximum length of 500 characters.", param=_path(param, key)
            )
        if value == "":
            result.pop(key, None)
        else:
            result[key] = value
    if len(result) > 50:
        raise StripeError(400, "Metadata can have a maximum of 50 keys.", param=param)
    return result


def _list_object(data: list[JSON], url: str, *, has_more: bool = False) -> JSON:
    return {"object": "list", "data": data, "has_more": has_more, "total_count": len(data), "url": url}


# --------------------------------------------------------------------------
# Webhook helpers


def event(
    type: str,
    obj: Mapping[str, Any],
    *,
    created: int | None = None,
    api_version: str = API_VERSION,
    event_id: str | None = None,
    previous_attributes: Mapping[str, Any] | None = None,
) -> JSON:
    """A Stripe Event (snapshot payload) carrying ``obj``, as Stripe posts it to a webhook endpoint."""
    data: JSON = {"object": _copy(obj)}
    if previous_attributes is not None:
        data["previous_attributes"] = _copy(previous_attributes)
    return {
        "id": event_id or _new_id("evt"),
        "object": "event",
        "api_version": api_version,
        "created": int(time.time()) if created is None else created,
        "data": data,
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "type": type,
    }


def sign(payload: bytes, secret: str, timestamp: int | None = None) -> str:
    """The ``Stripe-Signature`` header Stripe sends with ``payload``: ``t=<ts>,v1=<hex HMAC-SHA256>``."""
    stamp = int(time.time()) if timestamp is None else timestamp
    signed = f"{stamp}.".encode() + payload
    digest = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    return f"t={stamp},v1={digest}"


# --------------------------------------------------------------------------
# Requests, faults and idempotency records


@dataclass
class RecordedRequest:
    """One HTTP request as received (recorded before authentication and validation)."""

    method: str
    path: str
    params: JSON
    headers: dict[str, str]  # lower-case names
    idempotency_key: str | None
    stripe_version: str | None
    raw: str = ""  # the query string (GET/DELETE) or body (POST) exactly as sent
    status: int | None = None  # answered status; None if the connection was dropped
    replayed: bool = False  # answered from the idempotency store


class Hang:
    """Handle for a request delayed by ``FakeStripe.hang_next``.

    The request waits ``seconds`` (or until ``release()``), and only then is
    applied and answered, like a slow server.  Tests synchronise on
    ``wait_started`` / ``wait_done`` instead of sleeping.
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._release = threading.Event()
        self._started = threading.Event()
        self._done = threading.Event()

    def release(self) -> None:
        """End the delay now."""
        self._release.set()

    def wait_started(self, timeout: float = 5.0) -> bool:
        """Wait until the delayed request has arrived and is waiting."""
        return self._started.wait(timeout)

    def wait_done(self, timeout: float = 5.0) -> bool:
        """Wait until the delayed request has been applied and its answer produced."""
        return self._done.wait(timeout)


@dataclass
class _Fault:
    kind: Literal["fail", "hang", "drop"]
    method: str
    path_prefix: str
    remaining: int = 1
    status: int = 500
    error_type: str | None = None
    should_retry: bool | None = None
    hang: Hang | None = None

    def matches(self, method: str, path: str) -> bool:
        return self.remaining > 0 and self.method == method and path.startswith(self.path_prefix)


@dataclass
class _IdempotentResult:
    fingerprint: tuple[str, str, str]
    created: float
    status: int | None = None  # None while the first request is still executing
    body: JSON | None = None
    request_id: str | None = None


@dataclass
class _Reply:
    status: int
    body: JSON
    headers: dict[str, str] = field(default_factory=dict)
    drop: bool = False


@dataclass
class _State:
    """Everything an API call can change (snapshotted so a failed call changes nothing)."""

    customers: dict[str, JSON] = field(default_factory=dict)
    products: dict[str, JSON] = field(default_factory=dict)
    prices: dict[str, JSON] = field(default_factory=dict)
    meters: dict[str, JSON] = field(default_factory=dict)
    meter_events: dict[tuple[str, str], list[JSON]] = field(default_factory=dict)
    meter_billed: dict[tuple[str, str], int] = field(default_factory=dict)  # events already invoiced
    meter_identifiers: set[str] = field(default_factory=set)
    subscriptions: dict[str, JSON] = field(default_factory=dict)
    invoice_items: dict[str, JSON] = field(default_factory=dict)
    invoices: dict[str, JSON] = field(default_factory=dict)
    checkout_sessions: dict[str, JSON] = field(default_factory=dict)
    portal_sessions: dict[str, JSON] = field(default_factory=dict)
    payment_methods: dict[str, JSON] = field(default_factory=dict)
    setup_intents: dict[str, JSON] = field(default_factory=dict)
    quantity_changes: list[tuple[str, int, int, int]] = field(default_factory=list)
    private: dict[str, JSON] = field(default_factory=dict)  # per object id: what Stripe keeps but does not show


@dataclass(frozen=True)
class _Route:
    method: str
    pattern: re.Pattern[str]
    params_class: type
    modelled: Modelled
    handler: str  # name of a FakeStripe method (now, params, **path groups) -> object


def _route(method: str, pattern: str, params_class: type, modelled: Modelled, handler: str) -> _Route:
    regex = re.compile(pattern.replace("{id}", r"(?P<id>[^/]+)"))
    return _Route(method, regex, params_class, modelled, handler)


_RETRIEVE: Modelled = {"expand": True}
_LIST: Modelled = {"expand": True, "limit": True, "starting_after": True, "ending_before": True}
_CUSTOMER: Modelled = {
    "name": True,
    "email": True,
    "description": True,
    "phone": True,
    "preferred_locales": True,
    "metadata": True,
    "invoice_settings": {"default_payment_method": True},
    "expand": True,
}

_ROUTES: tuple[_Route, ...] = (
    _route("POST", "/v1/customers", CustomerCreateParams, _CUSTOMER, "_create_customer"),
    _route("GET", "/v1/customers/{id}", CustomerRetrieveParams, _RETRIEVE, "_retrieve_customer"),
    _route("POST", "/v1/customers/{id}", CustomerUpdateParams, _CUSTOMER, "_update_customer"),
    _route(
        "POST",
        "/v1/products",
        ProductCreateParams,
        {"id": True, "name": True, "description": True, "active": True, "metadata": True, "unit_label": True,
         "expand": True},
        "_create_product",
    ),
    _route("GET", "/v1/products/{id}", ProductRetrieveParams, _RETRIEVE, "_retrieve_product"),
    _route(
        "POST",
        "/v1/prices",
        PriceCreateParams,
        {"currency": True, "unit_amount": True, "unit_amount_decimal": True, "product": True, "nickname": True, "metadata": True,
         "lookup_key": True, "transfer_lookup_key": True, "active": True, "tax_behavior": True, "expand": True,
         "recurring": {"interval": True, "interval_count": True, "usage_type": True, "meter": True}},
        "_create_price",
    ),
    _route("GET", "/v1/prices/{id}", PriceRetrieveParams, _RETRIEVE, "_retrieve_price"),
    _route(
        "POST",
        "/v1/billing/meters",
        billing_params.MeterCreateParams,
        {"display_name": True, "event_name": True, "default_aggregation": True, "customer_mapping": True,
         "value_settings": True, "event_time_window": True, "expand": True},
        "_create_meter",
    ),
    _route("GET", "/v1/billing/meters", billing_params.MeterListParams, {**_LIST, "status": True}, "_list_meters"),
    _route(
        "POST",
        "/v1/billing/meter_events",
        billing_params.MeterEventCreateParams,
        {"event_name": True, "payload": True, "identifier": True, "timestamp": True, "expand": True},
        "_create_meter_event",
    ),
    _route(
        "POST",
        "/v1/subscriptions",
        SubscriptionCreateParams,
        {"customer": True, "items": [{"price": True, "quantity": True, "metadata": True}],
         "proration_behavior": True, "collection_method": True, "days_until_due": True,
         "payment_behavior": True, "metadata": True, "default_payment_method": True,
         "billing_cycle_anchor": True, "cancel_at_period_end": True, "description": True,
         "off_session": True, "expand": True},
        "_create_subscription",
    ),
    _route("GET", "/v1/subscriptions", SubscriptionListParams, {**_LIST, "customer": True, "status": True}, "_list_subscriptions"),
    _route("GET", "/v1/subscriptions/{id}", SubscriptionRetrieveParams, _RETRIEVE, "_retrieve_subscription"),
    _route(
        "POST",
        "/v1/subscriptions/{id}",
        SubscriptionUpdateParams,
        {"items": [{"id": True, "price": True, "quantity": True, "deleted": True, "metadata": True}],
         "proration_behavior": True, "proration_date": True, "metadata": True, "cancel_at_period_end": True,
         "default_payment_method": True, "description": True, "payment_behavior": True, "off_session": True,
         "cancellation_details": True, "expand": True},
        "_update_subscription",
    ),
    _route(
        "DELETE",
        "/v1/subscriptions/{id}",
        SubscriptionCancelParams,
        {"cancellation_details": True, "invoice_now": True, "prorate": True, "expand": True},
        "_cancel_subscription",
    ),
    _route(
        "POST",
        "/v1/subscription_items/{id}",
        SubscriptionItemUpdateParams,
        {"quantity": True, "proration_behavior": True, "proration_date": True, "metadata": True,
         "payment_behavior": True, "off_session": True, "expand": True},
        "_update_subscription_item",
    ),
    _route(
        "POST",
        "/v1/checkout/sessions",
        checkout_params.SessionCreateParams,
        {"mode": True, "customer": True, "currency": True, "success_url": True, "cancel_url": True,
         "allowed_payment_method_types": True, "metadata": True, "client_reference_id": True,
         "setup_intent_data": {"metadata": True, "description": True}, "expand": True},
        "_create_checkout_session",
    ),
    _route(
        "GET", "/v1/checkout/sessions/{id}", checkout_params.SessionRetrieveParams, _RETRIEVE,
        "_retrieve_checkout_session",
    ),
    _route(
        "POST",
        "/v1/billing_portal/sessions",
        portal_params.SessionCreateParams,
        {"customer": True, "return_url": True, "locale": True, "expand": True},
        "_create_portal_session",
    ),
    _route(
        "GET",
        "/v1/invoices",
        InvoiceListParams,
        {**_LIST, "customer": True, "subscription": True, "status": True, "collection_method": True},
        "_list_invoices",
    ),
    _route("GET", "/v1/invoices/{id}", InvoiceRetrieveParams, _RETRIEVE, "_retrieve_invoice"),
    _route("GET", "/v1/setup_intents/{id}", SetupIntentRetrieveParams, _RETRIEVE, "_retrieve_setup_intent"),
)

# id prefix -> (_State attribute, name in "No such ..." messages) for expansion
_EXPANDABLE: dict[str, tuple[str, str]] = {
    "cus_": ("customers", "customer"),
    "prod_": ("products", "product"),
    "price_": ("prices", "price"),
    "sub_": ("subscriptions", "subscription"),
    "in_": ("invoices", "invoice"),
    "pm_": ("payment_methods", "payment_method"),
    "seti_": ("setup_intents", "setup_intent"),
}


# --------------------------------------------------------------------------
# The HTTP layer


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, fake: FakeStripe) -> None:
        self.fake = fake
        super().__init__(("127.0.0.1", 0), _Handler)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the library's HTTP clients expect
    server: _HTTPServer

    def setup(self) -> None:
        super().setup()
        # headers and body go out in two writes; without this, Nagle + delayed ACKs add ~40 ms per answer
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.fake._connections.add(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.fake._connections.discard(self.connection)

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = {name.lower(): value for name, value in self.headers.items()}
        reply = self.server.fake._handle(self.command, self.path, headers, body)
        if reply.drop:
            self.close_connection = True  # no status line, no body: the client sees the connection close
            return
        data = json.dumps(reply.body, indent=2).encode()
        try:
            self.send_response(reply.status)
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except OSError:  # the client gave up (timeout) while the answer was being prepared
            self.close_connection = True

    do_GET = do_POST = do_DELETE = do_PUT = do_PATCH = _serve

    def log_message(self, format: str, *args: Any) -> None:
        pass


# --------------------------------------------------------------------------
# The server


class FakeStripe:
    """In-memory Stripe API (v1, pinned version) on 127.0.0.1; see the module docstring."""

    def __init__(self, api_key: str = DEFAULT_API_KEY, clock: Callable[[], float] = time.time) -> None:
        self.api_key = api_key
        self._clock = clock
        self._lock = threading.RLock()
        self._state = _State()
        self._faults: list[_Fault] = []
        self._idempotency: dict[tuple[str, str], _IdempotentResult] = {}
        self._connections: set[socket.socket] = set()
        self._stopping = threading.Event()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.requests: list[RecordedRequest] = []
        self.portal_configuration = _new_id("bpc")

    # -- lifecycle ---------------------------------------------------------

    def start(self) -> typing.Self:
        if self._httpd is not None:
            raise RuntimeError("FakeStripe is already running")
        self._stopping.clear()
        self._httpd = _HTTPServer(self)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="fake-stripe", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving.  Delayed (hung) requests are abandoned unapplied; open connections are closed."""
        httpd, thread = self._httpd, self._thread
        if httpd is None:
            return
        self._stopping.set()
        with self._lock:
            for fault in self._faults:
                if fault.hang is not None:
                    fault.hang.release()
        httpd.shutdown()
        httpd.server_close()
        for connection in list(self._connections):
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if thread is not None:
            thread.join(timeout=5)
        self._httpd = self._thread = None

    def __enter__(self) -> typing.Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        if self._httpd is None:
            raise RuntimeError("FakeStripe is not running; call start()")
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def _now(self) -> int:
        return int(self._clock())

    # -- inspection --------------------------------------------------------

    def requests_to(self, method: str, path_prefix: str) -> list[RecordedRequest]:
        """Recorded requests with this method whose path starts with ``path_prefix``."""
        with self._lock:
            return [r for r in self.requests if r.method == method.upper() and r.path.startswith(path_prefix)]

    @property
    def quantity_changes(self) -> list[tuple[str, int, int, int]]:
        """(subscription_item_id, old quantity, new quantity, unix time) for every applied change."""
        with self._lock:
            return list(self._state.quantity_changes)

    def meter_total(self, event_name: str, customer_id: str) -> Decimal:
        """The meter's aggregate (its formula: sum, count or last) over all accepted events."""
        with self._lock:
            meter = self._active_meter(event_name)
            formula = meter["default_aggregation"]["formula"] if meter else "sum"
            return _aggregate(self._state.meter_events.get((event_name, customer_id), []), formula)

    def get(self, object_id: str) -> JSON:
        """Any stored object by id (customers, subscriptions, invoices, invoice items, sessions, ...)."""
        with self._lock:
            for name, store in vars(self._state).items():
                if name != "private" and isinstance(store, dict) and object_id in store:
                    return _copy(store[object_id])
        raise KeyError(object_id)

    def objects(self, object_type: str) -> list[JSON]:
        """All stored objects whose ``object`` is ``object_type`` ("customer", "subscription", ...), oldest first."""
        with self._lock:
            return [
                _copy(obj)
                for name, store in vars(self._state).items()
                if name != "private" and isinstance(store, dict)
                for obj in store.values()
                if isinstance(obj, dict) and obj.get("object") == object_type
            ]

    def pending_invoice_items(self, customer_id: str) -> list[JSON]:
        with self._lock:
            return [
                _copy(item)
                for item in self._state.invoice_items.values()
                if item["customer"] == customer_id and item["invoice"] is None
            ]

    # -- fault injection ---------------------------------------------------

    def fail_next(
        self,
        method: str,
        path_prefix: str,
        status: int = 500,
        times: int = 1,
        error_type: str | None = None,
        *,
        should_retry: bool | None = None,
    ) -> None:
        """Answer the next ``times`` matching requests with an error, without applying them.

        5xx answers carry ``error_type`` (default ``api_error``); 429 is Stripe's
        rate-limit error.  ``should_retry`` sets ``Stripe-Should-Retry``, which the
        library obeys (it retries 409 and 5xx by itself, never 429 without it).
        """
        with self._lock:
            self._faults.append(
                _Fault("fail", method.upper(), path_prefix, times, status, error_type, should_retry)
            )

    def hang_next(self, method: str, path_prefix: str, seconds: float) -> Hang:
        """Delay the next matching request by ``seconds`` before applying and answering it.

        Like a slow server, the change is applied only after the delay, even if the
        client has given up by then; a retry with the same Idempotency-Key that
        arrives meanwhile gets 409 ``idempotency_key_in_use``, one arriving later
        gets the stored answer.  ``stop()`` abandons the request unapplied.
        """
        hang = Hang(seconds)
        with self._lock:
            self._faults.append(_Fault("hang", method.upper(), path_prefix, hang=hang))
        return hang

    def drop_response_next(self, method: str, path_prefix: str) -> None:
        """Apply the next matching request (storing its idempotent answer), then close the
        connection without answering, as if the response were lost on the network."""
        with self._lock:
            self._faults.append(_Fault("drop", method.upper(), path_prefix))

    def _take_faults(self, method: str, path: str) -> dict[str, _Fault]:
        taken: dict[str, _Fault] = {}
        with self._lock:
            for fault in self._faults:
                if fault.kind not in taken and fault.matches(method, path):
                    fault.remaining -= 1
                    taken[fault.kind] = fault
            self._faults = [fault for fault in self._faults if fault.remaining > 0]
        return taken

    # -- request handling --------------------------------------------------

    def _handle(self, method: str, target: str, headers: dict[str, str], body: bytes) -> _Reply:
        request_id = _new_id("req", 14)
        version = headers.get("stripe-version")
        split = urlsplit(target)
        record = RecordedRequest(
            method,
            split.path,
            {},
            headers,
            headers.get("idempotency-key"),
            version,
            raw=body.decode("utf-8", "replace") if body else split.query,
        )
        with self._lock:
            self.requests.append(record)
        reply_headers = {"Request-Id": request_id, "Stripe-Version": version or API_VERSION}
        slot: tuple[str, str] | None = None
        hang: Hang | None = None
        try:
            record.params = self._decode(split.query, headers, body)
            self._authenticate(headers.get("authorization"))
            if version is not None and version != API_VERSION:
                raise StripeError(
                    400,
                    f"fake_stripe only implements API version {API_VERSION}; this request asked for {version}.",
                    param="Stripe-Version",
                )
            route, path_args = self._find_route(method, split.path)
            if method == "POST" and record.idempotency_key:
                key = (self.api_key, record.idempotency_key)
                stored = self._begin_idempotent(key, (method, split.path, _canonical(record.params)))
                if stored is None:
                    slot = key  # reserved for this request until its answer is stored
                else:
                    record.replayed = True
                    record.status = stored.status
                    assert stored.status is not None and stored.body is not None
                    replay_headers = {
                        **reply_headers,
                        "Idempotency-Key": record.idempotency_key,
                        "Idempotent-Replayed": "true",
                        "Original-Request": stored.request_id or request_id,
                    }
                    return _Reply(stored.status, _copy(stored.body), replay_headers)
                reply_headers["Idempotency-Key"] = record.idempotency_key
            faults = self._take_faults(method, split.path)
            if "hang" in faults:
                hang = faults["hang"].hang
                assert hang is not None
                hang._started.set()
                hang._release.wait(hang.seconds)
                if self._stopping.is_set():
                    return _Reply(0, {}, drop=True)
            if "fail" in faults:
                raise self._injected_error(faults["fail"], reply_headers)
            params = coerce_params(record.params, route.params_class)
            _check_modelled(params, route.modelled)
            status, answer = self._apply(route, params, path_args)
            if slot is not None:
                self._finish_idempotent(slot, status, answer, request_id)
                slot = None
            dropped = "drop" in faults
            record.status = None if dropped else status
            return _Reply(status, answer, reply_headers, drop=dropped)
        except StripeError as error:
            record.status = error.status
            return _Reply(error.status, error.body(), reply_headers)
        finally:
            if slot is not None:  # not stored: failed validation, injected failure, or abandoned
                with self._lock:
                    self._idempotency.pop(slot, None)
            if hang is not None:
                hang._done.set()

    def _decode(self, query: str, headers: Mapping[str, str], body: bytes) -> JSON:
        pairs = parse_qsl(query, keep_blank_values=True)
        if body:
            content_type = headers.get("content-type", "")
            if not content_type.startswith("application/x-www-form-urlencoded"):
                raise StripeError(
                    400,
                    "Invalid request: Stripe's v1 API takes application/x-www-form-urlencoded bodies "
                    f"(got {content_type or 'no Content-Type'}).",
                )
            try:
                pairs += parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
            except UnicodeDecodeError as error:
                raise StripeError(400, "Invalid request: the body is not UTF-8.") from error
        return decode_params(pairs)

    def _authenticate(self, authorization: str | None) -> None:
        if not authorization:
            raise StripeError(
                401,
                "You did not provide an API key. You need to provide your API key in the Authorization "
                "header, using Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY'). See "
                "https://stripe.com/docs/api#authentication for details, or we can help at "
                "https://support.stripe.com/.",
            )
        scheme, _, key = authorization.partition(" ")
        if scheme.lower() != "bearer" or key.strip() != self.api_key:
            raise StripeError(401, f"Invalid API Key provided: {_mask_key(key.strip())}")

    def _find_route(self, method: str, path: str) -> tuple[_Route, dict[str, str]]:
        for route in _ROUTES:
            match = route.pattern.fullmatch(path)
            if match is not None and route.method == method:
                return route, {name: unquote(value) for name, value in match.groupdict().items()}
        raise StripeError(
            404,
            f"Unrecognized request URL ({method}: {path}). Please see https://stripe.com/docs or we can "
            "help at https://support.stripe.com/.",
        )

    def _injected_error(self, fault: _Fault, headers: dict[str, str]) -> StripeError:
        if fault.should_retry is not None:
            headers["Stripe-Should-Retry"] = "true" if fault.should_retry else "false"
        if fault.status == 429:
            return StripeError(
                429,
                "Request rate limit exceeded. Learn more about rate limits here "
                "https://stripe.com/docs/rate-limits.",
                type=fault.error_type or "invalid_request_error",
                code="rate_limit",
            )
        if fault.status >= 500:
            return StripeError(
                fault.status,
                "Something went wrong on Stripe's end. (fake_stripe: injected with fail_next)",
                type=fault.error_type or "api_error",
            )
        return StripeError(
            fault.status,
            "fake_stripe: error injected with fail_next",
            type=fault.error_type or ("card_error" if fault.status == 402 else "invalid_request_error"),
        )

    def _begin_idempotent(
        self, slot: tuple[str, str], fingerprint: tuple[str, str, str]
    ) -> _IdempotentResult | None:
        """The stored result to replay, or None after reserving the key for this request."""
        key = slot[1]
        if len(key) > 255:
            raise StripeError(400, "Idempotency-Key must be at most 255 characters long.", type="idempotency_error")
        with self._lock:
            now = self._clock()
            stored = self._idempotency.get(slot)
            if stored is not None and now - stored.created > IDEMPOTENCY_TTL_S:
                stored = None
            if stored is None:
                self._idempotency[slot] = _IdempotentResult(fingerprint, now)
                return None
            if stored.status is None:
                raise StripeError(
                    409,
                    "There is currently another in-progress request using this Idempotent Key (that probably "
                    f"means you submitted twice, and the other request is still going through): {key}. "
                    "Please try again later.",
                    code="idempotency_key_in_use",
                )
            if stored.fingerprint[:2] != fingerprint[:2]:
                raise StripeError(
                    400,
                    "Keys for idempotent requests can only be used for the same endpoint they were first used "
                    f"for ('{' '.join(stored.fingerprint[:2])}' vs '{' '.join(fingerprint[:2])}'). Try using "
                    f"a key other than '{key}' if you meant to execute a different request.",
                    type="idempotency_error",
                )
            if stored.fingerprint != fingerprint:
                raise StripeError(
                    400,
                    "Keys for idempotent requests can only be used with the same parameters they were first "
                    f"used with. Try using a key other than '{key}' if you meant to execute a different "
                    "request.",
                    type="idempotency_error",
                )
            return stored

    def _finish_idempotent(self, slot: tuple[str, str], status: int, body: JSON, request_id: str) -> None:
        with self._lock:
            if status >= 500:
                self._idempotency.pop(slot, None)
                return
            stored = self._idempotency[slot]
            stored.status, stored.body, stored.request_id = status, _copy(body), request_id

    def _apply(self, route: _Route, params: JSON, path_args: dict[str, str]) -> tuple[int, JSON]:
        """Run a handler atomically: on an error, every change it made is undone."""
        with self._lock:
            backup = copy.deepcopy(self._state)
            try:
                handler = getattr(self, route.handler)
                result = _copy(handler(self._now(), params, **path_args))
                for path in params.get("expand", []):
                    self._expand(result, path.split("."), path)
                return 200, result
            except StripeError as error:
                self._state = backup
                return error.status, error.body()
            except Exception as error:  # noqa: BLE001 - a bug in the double: answer a 500, change nothing
                self._state = backup
                return 500, StripeError(
                    500, f"fake_stripe internal error: {type(error).__name__}: {error}", type="api_error"
                ).body()

    def _expand(self, node: Any, parts: list[str], path: str) -> None:
        if isinstance(node, dict) and node.get("object") == "list" and parts[0] == "data" and len(parts) > 1:
            for element in node["data"]:
                self._expand(element, parts[1:], path)
            return
        if not isinstance(node, dict) or parts[0] not in node:
            raise StripeError(400, f"This property cannot be expanded ({path}).")
        value = node[parts[0]]
        if isinstance(value, str):
            value = node[parts[0]] = self._expandable(value, path)
        if len(parts) > 1 and value is not None:
            self._expand(value, parts[1:], path)

    def _expandable(self, object_id: str, path: str) -> JSON:
        for prefix, (store, _) in _EXPANDABLE.items():
            if object_id.startswith(prefix) and object_id in getattr(self._state, store):
                return _copy(getattr(self._state, store)[object_id])
        raise StripeError(400, f"This property cannot be expanded ({path}).")

    # -- lookups -----------------------------------------------------------

    def _customer(self, customer_id: str, *, param: str = "customer", status: int = 400) -> JSON:
        customer = self._state.customers.get(customer_id)
        if customer is None:
            raise _no_such("customer", customer_id, param=param, status=status)
        return customer

    def _subscription(self, subscription_id: str, now: int) -> JSON:
        subscription = self._state.subscriptions.get(subscription_id)
        if subscription is None:
            raise _no_such("subscription", subscription_id, param="id", status=404)
        self._refresh(subscription, now)
        return subscription

    def _require_payment_method(self, payment_method_id: str, customer_id: str, param: str) -> None:
        method = self._state.payment_methods.get(payment_method_id)
        if method is None or method["customer"] != customer_id:
            raise _no_such("PaymentMethod", payment_method_id, param=param)

    def _active_meter(self, event_name: str) -> JSON | None:
        for meter in self._state.meters.values():
            if meter["event_name"] == event_name and meter["status"] == "active":
                return meter
        return None

    def _page(self, objects: list[JSON], params: JSON, url: str, kind: str) -> JSON:
        """A list object, newest first, with Stripe's cursor pagination."""
        ordered = list(reversed(objects))
        limit = params.get("limit", 10)
        if not 1 <= limit <= 100:
            raise StripeError(400, "Invalid limit: must be between 1 and 100", param="limit")
        ids = [obj["id"] for obj in ordered]
        if "ending_before" in params:
            cursor = params["ending_before"]
            if cursor not in ids:
                raise _no_such(kind, cursor, param="ending_before")
            before = ordered[: ids.index(cursor)]
            return _list_object(before[-limit:], url, has_more=len(before) > limit)
        if "starting_after" in params:
            cursor = params["starting_after"]
            if cursor not in ids:
                raise _no_such(kind, cursor, param="starting_after")
            ordered = ordered[ids.index(cursor) + 1 :]
        return _list_object(ordered[:limit], url, has_more=len(ordered) > limit)

    # -- customers, products, prices ---------------------------------------

    def _create_customer(self, now: int, params: JSON) -> JSON:
        customer_id = _new_id("cus", 14)
        customer: JSON = {
            "id": customer_id,
            "object": "customer",
            "address": None,
            "balance": 0,
            "created": now,
            "currency": None,
            "default_source": None,
            "delinquent": False,
            "description": None,
            "discount": None,
            "email": None,
            "invoice_prefix": "".join(secrets.choice(string.ascii_uppercase + string.digits) for _ in range(8)),
            "invoice_settings": {
                "custom_fields": None,
                "default_payment_method": None,
                "footer": None,
                "rendering_options": None,
            },
            "livemode": False,
            "metadata": {},
            "name": None,
            "next_invoice_sequence": 1,
            "phone": None,
            "preferred_locales": [],
            "shipping": None,
            "tax_exempt": "none",
            "test_clock": None,
        }
        self._state.customers[customer_id] = customer
        self._update_customer_fields(customer, params)
        return customer

    def _update_customer_fields(self, customer: JSON, params: JSON) -> None:
        email = params.get("email")
        if email and not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", email):
            raise StripeError(400, f"Invalid email address: {email}", code="email_invalid", param="email")
        for name in ("name", "email", "description", "phone"):
            if name in params:
                customer[name] = params[name] or None  # "" unsets
        if "preferred_locales" in params:
            customer["preferred_locales"] = params["preferred_locales"] or []
        customer["metadata"] = _apply_metadata(customer["metadata"], params.get("metadata"))
        settings = params.get("invoice_settings", {})
        if "default_payment_method" in settings:
            method = settings["default_payment_method"] or None  # "" unsets
            if method is not None:
                param = "invoice_settings[default_payment_method]"
                self._require_payment_method(method, customer["id"], param)
            customer["invoice_settings"]["default_payment_method"] = method

    def _retrieve_customer(self, now: int, params: JSON, id: str) -> JSON:
        return self._customer(id, param="id", status=404)

    def _update_customer(self, now: int, params: JSON, id: str) -> JSON:
        customer = self._customer(id, param="id", status=404)
        self._update_customer_fields(customer, params)
        return customer

    def _create_product(self, now: int, params: JSON) -> JSON:
        product_id = params.get("id") or _new_id("prod", 14)
        if product_id in self._state.products:
            raise StripeError(400, "Product already exists.", code="resource_already_exists", param="id")
        product: JSON = {
            "id": product_id,
            "object": "product",
            "active": params.get("active", True),
            "created": now,
            "default_price": None,
            "description": params.get("description"),
            "images": [],
            "livemode": False,
            "marketing_features": [],
            "metadata": _apply_metadata({}, params.get("metadata")),
            "name": params["name"],
            "package_dimensions": None,
            "shippable": None,
            "statement_descriptor": None,
            "tax_code": None,
            "unit_label": params.get("unit_label"),
            "updated": now,
            "url": None,
        }
        self._state.products[product_id] = product
        return product

    def _retrieve_product(self, now: int, params: JSON, id: str) -> JSON:
        product = self._state.products.get(id)
        if product is None:
            raise _no_such("product", id, param="id", status=404)
        return product

    def _create_price(self, now: int, params: JSON) -> JSON:
        if "product" not in params:
            raise _missing("product")
        if params["product"] not in self._state.products:
            raise _no_such("product", params["product"], param="product")
        # Exactly one of unit_amount (whole minor units) and unit_amount_decimal (fractions
        # of a minor unit, up to 12 decimals); the decimal form is modelled for metered prices.
        if ("unit_amount" in params) == ("unit_amount_decimal" in params):
            raise _missing("unit_amount")
        if "unit_amount_decimal" in params:
            try:
                decimal_amount = Decimal(params["unit_amount_decimal"])
            except ArithmeticError:
                raise StripeError(400, "Invalid decimal: unit_amount_decimal", param="unit_amount_decimal") from None
            if not decimal_amount.is_finite() or decimal_amount < 0 or -decimal_amount.as_tuple().exponent > 12:
                raise StripeError(400, "Invalid unit_amount_decimal", param="unit_amount_decimal")
            if (params.get("recurring") or {}).get("usage_type") != "metered":
                raise _unmodelled("unit_amount_decimal")
            unit_amount = int(decimal_amount) if decimal_amount == decimal_amount.to_integral_value() else None
            unit_amount_decimal = str(decimal_amount)
        else:
            if params["unit_amount"] < 0:
                raise StripeError(400, "Invalid unit_amount: must be at least 0", param="unit_amount")
            unit_amount, unit_amount_decimal = params["unit_amount"], str(params["unit_amount"])
        recurring = params.get("recurring")
        if recurring is not None:
            usage_type = recurring.get("usage_type", "licensed")
            meter = recurring.get("meter")
            if recurring.get("interval_count", 1) < 1:
                raise StripeError(400, "Invalid interval_count: must be at least 1", param="recurring[interval_count]")
            if usage_type == "metered" and meter is None:
                raise StripeError(
                    400,
                    "Metered prices must be backed by a billing meter: pass recurring[meter].",
                    code="parameter_missing",
                    param="recurring[meter]",
                )
            if meter is not None and usage_type != "metered":
                raise StripeError(
                    400, "recurring[meter] can only be used with recurring[usage_type]=metered.",
                    param="recurring[meter]",
                )
            if meter is not None and meter not in self._state.meters:
                raise _no_such("billing meter", meter, param="recurring[meter]")
            recurring = {
                "interval": recurring["interval"],
                "interval_count": recurring.get("interval_count", 1),
                "meter": meter,
                "trial_period_days": None,
                "usage_type": usage_type,
            }
        lookup_key = params.get("lookup_key")
        if lookup_key is not None:
            for other in self._state.prices.values():
                if other["lookup_key"] == lookup_key:
                    if not params.get("transfer_lookup_key"):
                        raise StripeError(
                            400, f"A price (`{other['id']}`) already uses that lookup key.", param="lookup_key"
                        )
                    other["lookup_key"] = None
        price_id = _new_id("price", 24)
        price: JSON = {
            "id": price_id,
            "object": "price",
            "active": params.get("active", True),
            "billing_scheme": "per_unit",
            "created": now,
            "currency": params["currency"].lower(),
            "custom_unit_amount": None,
            "livemode": False,
            "lookup_key": lookup_key,
            "metadata": _apply_metadata({}, params.get("metadata")),
            "nickname": params.get("nickname"),
            "product": params["product"],
            "recurring": recurring,
            "tax_behavior": params.get("tax_behavior", "unspecified"),
            "tiers_mode": None,
            "transform_quantity": None,
            "type": "recurring" if recurring else "one_time",
            "unit_amount": unit_amount,
            "unit_amount_decimal": unit_amount_decimal,
        }
        self._state.prices[price_id] = price
        return price

    def _retrieve_price(self, now: int, params: JSON, id: str) -> JSON:
        price = self._state.prices.get(id)
        if price is None:
            raise _no_such("price", id, param="id", status=404)
        return price

    # -- billing meters ----------------------------------------------------

    def _create_meter(self, now: int, params: JSON) -> JSON:
        if self._active_meter(params["event_name"]) is not None:
            raise StripeError(
                400,
                f"An active meter with event_name '{params['event_name']}' already exists.",
                code="resource_already_exists",
                param="event_name",
            )
        meter_id = _new_id("mtr", 24)
        meter: JSON = {
            "id": meter_id,
            "object": "billing.meter",
            "created": now,
            "customer_mapping": params.get(
                "customer_mapping", {"event_payload_key": "stripe_customer_id", "type": "by_id"}
            ),
            "default_aggregation": {"formula": params["default_aggregation"]["formula"]},
            "display_name": params["display_name"],
            "event_name": params["event_name"],
            "event_time_window": params.get("event_time_window"),
            "livemode": False,
            "status": "active",
            "status_transitions": {"deactivated_at": None},
            "updated": now,
            "value_settings": params.get("value_settings", {"event_payload_key": "value"}),
        }
        self._state.meters[meter_id] = meter
        return meter

    def _list_meters(self, now: int, params: JSON) -> JSON:
        meters = [m for m in self._state.meters.values() if params.get("status", m["status"]) == m["status"]]
        return self._page(meters, params, "/v1/billing/meters", "billing meter")

    def _create_meter_event(self, now: int, params: JSON) -> JSON:
        event_name = params["event_name"]
        meter = self._active_meter(event_name)
        if meter is None:
            raise StripeError(
                400, f"No active meter was found with event_name '{event_name}'.", code="resource_missing",
                param="event_name",
            )
        payload: dict[str, str] = params["payload"]
        customer_key = meter["customer_mapping"]["event_payload_key"]
        value_key = meter["value_settings"]["event_payload_key"]
        if customer_key not in payload:
            raise _missing(f"payload[{customer_key}]")
        self._customer(payload[customer_key], param=f"payload[{customer_key}]")
        value = Decimal(1)
        if meter["default_aggregation"]["formula"] != "count":
            if value_key not in payload:
                raise _missing(f"payload[{value_key}]")
            try:
                value = Decimal(payload[value_key])
            except InvalidOperation:
                value = Decimal("NaN")
            if not value.is_finite():
                raise StripeError(
                    400, f"Invalid value for payload[{value_key}]: must be a number", param=f"payload[{value_key}]"
                )
        timestamp = params.get("timestamp", now)
        if timestamp < now - METER_EVENT_MAX_AGE_S or timestamp > now + METER_EVENT_MAX_FUTURE_S:
            raise StripeError(
                400,
                "Timestamp must be within the past 35 days and no more than 5 minutes in the future.",
                param="timestamp",
            )
        identifier = params.get("identifier") or _new_id("mev", 20)
        if identifier in self._state.meter_identifiers:
            raise StripeError(
                400,
                f"An event with identifier '{identifier}' already exists.",
                code="resource_already_exists",
                param="identifier",
            )
        self._state.meter_identifiers.add(identifier)
        key = (event_name, payload[customer_key])
        self._state.meter_events.setdefault(key, []).append(
            {"identifier": identifier, "timestamp": timestamp, "value": str(value)}
        )
        return {
            "object": "billing.meter_event",
            "created": now,
            "event_name": event_name,
            "identifier": identifier,
            "livemode": False,
            "payload": payload,
            "timestamp": timestamp,
        }

    # -- subscriptions -----------------------------------------------------

    def _current_period(self, subscription: JSON, at: int) -> tuple[int, int]:
        recurring = subscription["items"]["data"][0]["price"]["recurring"]
        interval, count = recurring["interval"], recurring["interval_count"]
        start, anchor = subscription["start_date"], subscription["billing_cycle_anchor"]
        if at < anchor:
            return start, anchor
        cycles = 0
        while add_interval(anchor, interval, count * (cycles + 1)) <= at:
            cycles += 1
        return add_interval(anchor, interval, count * cycles), add_interval(anchor, interval, count * (cycles + 1))

    def _refresh(self, subscription: JSON, now: int) -> None:
        """Advance the subscription to ``now``: renew periods, end it at ``cancel_at``."""
        if subscription["status"] == "canceled":
            return
        at = now
        cancel_at = subscription["cancel_at"]
        if cancel_at is not None and now >= cancel_at:
            subscription.update(status="canceled", ended_at=cancel_at)
            at = cancel_at - 1
        start, end = self._current_period(subscription, at)
        for item in subscription["items"]["data"]:
            item["current_period_start"], item["current_period_end"] = start, end

    def _new_item(self, subscription_id: str, price: JSON, quantity: int | None, metadata: Any, now: int) -> JSON:
        item: JSON = {
            "id": _new_id("si", 14),
            "object": "subscription_item",
            "billing_thresholds": None,
            "created": now,
            "current_period_end": None,
            "current_period_start": None,
            "discounts": [],
            "metadata": _apply_metadata({}, metadata),
            "price": _copy(price),
            "subscription": subscription_id,
            "tax_rates": [],
        }
        if price["recurring"]["usage_type"] == "licensed":
            item["quantity"] = 1 if quantity is None else quantity
        return item

    def _item_price(self, item_params: JSON, param: str) -> JSON:
        if "price" not in item_params:
            raise _missing(f"{param}[price]")
        price = self._state.prices.get(item_params["price"])
        if price is None:
            raise _no_such("price", item_params["price"], param=f"{param}[price]")
        if price["type"] != "recurring":
            raise StripeError(
                400,
                "The price specified is set to `type=one_time` but this field only accepts prices with "
                "`type=recurring`.",
                param=f"{param}[price]",
            )
        if not price["active"]:
            raise StripeError(400, f"The price specified is inactive: {price['id']}", param=f"{param}[price]")
        if price["recurring"]["usage_type"] == "metered" and "quantity" in item_params:
            raise StripeError(
                400,
                f"Quantity should not be specified where usage_type is `metered`. Remove quantity from `{param}`.",
                param=f"{param}[quantity]",
            )
        return price

    def _check_items_compatible(self, subscription: JSON) -> None:
        prices = [item["price"] for item in subscription["items"]["data"]]
        first = prices[0]
        for price in prices[1:]:
            for name in ("interval", "interval_count"):
                if price["recurring"][name] != first["recurring"][name]:
                    raise StripeError(
                        400,
                        "Currency and interval fields must match across all plans on this subscription. "
                        f"Found mismatch in {name} field.",
                        param="items",
                    )
            if price["currency"] != first["currency"]:
                raise StripeError(
                    400,
                    "Currency and interval fields must match across all plans on this subscription. "
                    "Found mismatch in currency field.",
                    param="items",
                )
        seen: set[str] = set()
        for price in prices:
            if price["id"] in seen:
                raise StripeError(
                    400, f"Cannot add multiple subscription items with the same price: {price['id']}", param="items"
                )
            seen.add(price["id"])

    def _create_subscription(self, now: int, params: JSON) -> JSON:
        if "customer" not in params:
            raise _missing("customer")
        customer = self._customer(params["customer"])
        if not params.get("items"):
            raise _missing("items")
        if "default_payment_method" in params:
            self._require_payment_method(params["default_payment_method"], customer["id"], "default_payment_method")
        collection_method = params.get("collection_method", "charge_automatically")
        if collection_method == "send_invoice" and "days_until_due" not in params:
            raise _missing("days_until_due")
        subscription_id = _new_id("sub", 24)
        items = [
            self._new_item(
                subscription_id,
                self._item_price(item_params, f"items[{index}]"),
                item_params.get("quantity"),
                item_params.get("metadata"),
                now,
            )
            for index, item_params in enumerate(params["items"])
        ]
        first_recurring = items[0]["price"]["recurring"]
        anchor = params.get("billing_cycle_anchor", now)
        latest_anchor = add_interval(now, first_recurring["interval"], first_recurring["interval_count"])
        if not now <= anchor <= latest_anchor:
            raise StripeError(
                400,
                "billing_cycle_anchor must be between now and the end of the first full billing period.",
                param="billing_cycle_anchor",
            )
        subscription: JSON = {
            "id": subscription_id,
            "object": "subscription",
            "application": None,
            "billing_cycle_anchor": anchor,
            "cancel_at": None,
            "cancel_at_period_end": False,
            "canceled_at": None,
            "cancellation_details": {"comment": None, "feedback": None, "reason": None},
            "collection_method": collection_method,
            "created": now,
            "currency": items[0]["price"]["currency"],
            "customer": customer["id"],
            "days_until_due": params.get("days_until_due"),
            "default_payment_method": params.get("default_payment_method"),
            "description": params.get("description"),
            "discounts": [],
            "ended_at": None,
            "items": _list_object(items, f"/v1/subscription_items?subscription={subscription_id}"),
            "latest_invoice": None,
            "livemode": False,
            "metadata": _apply_metadata({}, params.get("metadata")),
            "pending_update": None,
            "start_date": now,
            "status": "active",
            "test_clock": None,
            "trial_end": None,
            "trial_start": None,
        }
        self._check_items_compatible(subscription)
        self._refresh(subscription, now)
        # the first partial period (before billing_cycle_anchor) is prorated unless proration_behavior=none
        self._state.private[subscription_id] = {
            "prorate_first_period": params.get("proration_behavior", "create_prorations") != "none"
        }
        if params.get("cancel_at_period_end"):
            subscription["cancel_at_period_end"] = True
            subscription["cancel_at"] = items[0]["current_period_end"]
        self._state.subscriptions[subscription_id] = subscription
        return subscription

    def _retrieve_subscription(self, now: int, params: JSON, id: str) -> JSON:
        return self._subscription(id, now)

    def _proration_time(self, subscription: JSON, params: JSON, now: int) -> int:
        at = params.get("proration_date", now)
        start, end = self._current_period(subscription, now)
        if not start <= at <= end:
            raise StripeError(
                400, "proration_date must be within the subscription's current billing period.",
                param="proration_date",
            )
        return at

    def _change_quantity(
        self, subscription: JSON, item: JSON, new: int, behavior: str, at: int, param: str
    ) -> None:
        price = item["price"]
        if price["recurring"]["usage_type"] == "metered":
            raise StripeError(
                400,
                "Quantity should not be specified where usage_type is `metered`.",
                param=param,
            )
        if new < 0:
            raise StripeError(400, "Invalid quantity: must be at least 0", param=param)
        old = item.get("quantity", 0)
        if new == old:
            return
        item["quantity"] = new
        self._state.quantity_changes.append((item["id"], old, new, at))
        self._prorate(subscription, item, new - old, behavior, at)

    def _prorate(self, subscription: JSON, item: JSON, delta: int, behavior: str, at: int) -> None:
        """Add the pending invoice item for a quantity change of ``delta`` at ``at``."""
        if behavior == "none" or delta == 0:
            return
        price = item["price"]
        start, end = item["current_period_start"], item["current_period_end"]
        amount = _round_half_away(Fraction(price["unit_amount"] * delta * (end - at), end - start))
        if amount == 0:
            return
        product = self._state.products[price["product"]]
        when = datetime.fromtimestamp(at, tz=UTC).strftime("%d %b %Y")
        description = (
            f"Remaining time on {delta} × {product['name']} after {when}"
            if delta > 0
            else f"Unused time on {-delta} × {product['name']} after {when}"
        )
        invoice_item_id = _new_id("ii", 24)
        self._state.invoice_items[invoice_item_id] = {
            "id": invoice_item_id,
            "object": "invoiceitem",
            "amount": amount,
            "currency": price["currency"],
            "customer": subscription["customer"],
            "date": at,
            "description": description,
            "discountable": False,
            "discounts": [],
            "invoice": None,
            "livemode": False,
            "metadata": {},
            "net_amount": amount,
            "parent": {
                "type": "subscription_details",
                "subscription_details": {"subscription": subscription["id"], "subscription_item": item["id"]},
            },
            "period": {"start": at, "end": end},
            "pricing": {
                "type": "price_details",
                "price_details": {"price": price["id"], "product": price["product"]},
                "unit_amount_decimal": price["unit_amount_decimal"],
            },
            "proration": True,
            "proration_details": {"credited_items": None},
            "quantity": abs(delta),
            "tax_rates": [],
            "test_clock": None,
        }

    def _require_not_canceled(self, subscription: JSON, params: JSON) -> None:
        if subscription["status"] == "canceled" and set(params) - {"metadata", "cancellation_details", "expand"}:
            raise StripeError(400, "A canceled subscription can only update its cancellation_details and metadata.")

    def _update_subscription(self, now: int, params: JSON, id: str) -> JSON:
        subscription = self._subscription(id, now)
        self._require_not_canceled(subscription, params)
        behavior = params.get("proration_behavior", "create_prorations")
        at = self._proration_time(subscription, params, now) if subscription["status"] != "canceled" else now
        items: list[JSON] = subscription["items"]["data"]
        for index, item_params in enumerate(params.get("items", [])):
            param = f"items[{index}]"
            if "id" not in item_params:
                price = self._item_price(item_params, param)
                item = self._new_item(subscription["id"], price, None, item_params.get("metadata"), now)
                item["current_period_start"] = items[0]["current_period_start"]
                item["current_period_end"] = items[0]["current_period_end"]
                items.append(item)
                self._check_items_compatible(subscription)
                if price["recurring"]["usage_type"] == "licensed":
                    item["quantity"] = 0
                    self._change_quantity(
                        subscription, item, item_params.get("quantity", 1), behavior, at, f"{param}[quantity]"
                    )
                continue
            item = next((i for i in items if i["id"] == item_params["id"]), None)
            if item is None:
                raise _no_such("subscription_item", item_params["id"], param=f"{param}[id]")
            if "price" in item_params and item_params["price"] != item["price"]["id"]:
                raise _unmodelled(f"{param}[price]")
            if item_params.get("deleted"):
                if item["price"]["recurring"]["usage_type"] == "licensed":
                    self._change_quantity(subscription, item, 0, behavior, at, f"{param}[deleted]")
                items.remove(item)
                continue
            if "quantity" in item_params:
                self._change_quantity(subscription, item, item_params["quantity"], behavior, at, f"{param}[quantity]")
            item["metadata"] = _apply_metadata(item["metadata"], item_params.get("metadata"), f"{param}[metadata]")
        if not items:
            raise StripeError(
                400,
                "A subscription must have at least one active plan. To cancel a subscription, please use the "
                "cancel endpoint.",
                param="items",
            )
        subscription["items"]["total_count"] = len(items)
        subscription["metadata"] = _apply_metadata(subscription["metadata"], params.get("metadata"))
        if "cancel_at_period_end" in params:
            subscription["cancel_at_period_end"] = params["cancel_at_period_end"]
            subscription["cancel_at"] = items[0]["current_period_end"] if params["cancel_at_period_end"] else None
            subscription["canceled_at"] = now if params["cancel_at_period_end"] else None
            subscription["cancellation_details"]["reason"] = (
                "cancellation_requested" if params["cancel_at_period_end"] else None
            )
        if "cancellation_details" in params:
            subscription["cancellation_details"].update(
                {key: value or None for key, value in params["cancellation_details"].items()}
            )
        if "default_payment_method" in params:
            self._require_payment_method(
                params["default_payment_method"], subscription["customer"], "default_payment_method"
            )
            subscription["default_payment_method"] = params["default_payment_method"]
        if "description" in params:
            subscription["description"] = params["description"] or None
        if behavior == "always_invoice":
            self._invoice_prorations_now(subscription, now)
        return subscription

    def _cancel_subscription(self, now: int, params: JSON, id: str) -> JSON:
        subscription = self._subscription(id, now)
        if subscription["status"] == "canceled":
            raise StripeError(400, f"This subscription is already canceled: {id}", param="id")
        for name in ("invoice_now", "prorate"):
            if params.get(name):
                raise _unmodelled(name)
        subscription.update(status="canceled", canceled_at=now, ended_at=now, cancel_at=None)
        subscription["cancellation_details"]["reason"] = "cancellation_requested"
        for key, value in params.get("cancellation_details", {}).items():
            subscription["cancellation_details"][key] = value or None
        return subscription

    def _update_subscription_item(self, now: int, params: JSON, id: str) -> JSON:
        for subscription in self._state.subscriptions.values():
            item = next((i for i in subscription["items"]["data"] if i["id"] == id), None)
            if item is not None:
                break
        else:
            raise _no_such("subscription_item", id, param="id", status=404)
        self._refresh(subscription, now)
        if subscription["status"] == "canceled":
            raise StripeError(400, "A canceled subscription can only update its cancellation_details and metadata.")
        behavior = params.get("proration_behavior", "create_prorations")
        if "quantity" in params:
            at = self._proration_time(subscription, params, now)
            self._change_quantity(subscription, item, params["quantity"], behavior, at, "quantity")
        item["metadata"] = _apply_metadata(item["metadata"], params.get("metadata"))
        if behavior == "always_invoice":
            self._invoice_prorations_now(subscription, now)
        return item

    # -- Checkout, billing portal, setup intents ---------------------------

    def _create_checkout_session(self, now: int, params: JSON) -> JSON:
        if "mode" not in params:
            raise _missing("mode")
        if params["mode"] != "setup":
            raise _unmodelled("mode")
        if "currency" not in params and "allowed_payment_method_types" not in params:
            raise _missing("currency")
        if "customer" in params:
            self._customer(params["customer"])
        session_id = _new_id("cs_test", 58)
        session: JSON = {
            "id": session_id,
            "object": "checkout.session",
            "allowed_payment_method_types": params.get("allowed_payment_method_types"),
            "cancel_url": params.get("cancel_url"),
            "client_reference_id": params.get("client_reference_id"),
            "created": now,
            "currency": params.get("currency"),
            "customer": params.get("customer"),
            "expires_at": now + 24 * 3600,
            "livemode": False,
            "metadata": _apply_metadata({}, params.get("metadata")),
            "mode": "setup",
            "payment_method_types": params.get("allowed_payment_method_types") or ["card"],
            "payment_status": "no_payment_required",
            "setup_intent": None,
            "status": "open",
            "success_url": params.get("success_url"),
            "ui_mode": "hosted_page",
            "url": f"{self.url}/checkout/{session_id}",
        }
        self._state.checkout_sessions[session_id] = session
        self._state.private[session_id] = {"setup_intent_data": params.get("setup_intent_data", {})}
        return session

    def _retrieve_checkout_session(self, now: int, params: JSON, id: str) -> JSON:
        session = self._state.checkout_sessions.get(id)
        if session is None:
            raise _no_such("checkout.session", id, param="session", status=404)
        return session

    def _create_portal_session(self, now: int, params: JSON) -> JSON:
        if "customer" not in params:
            raise _missing("customer")
        self._customer(params["customer"])
        session_id = _new_id("bps", 24)
        session: JSON = {
            "id": session_id,
            "object": "billing_portal.session",
            "configuration": self.portal_configuration,
            "created": now,
            "customer": params["customer"],
            "flow": None,
            "livemode": False,
            "locale": params.get("locale"),
            "on_behalf_of": None,
            "return_url": params.get("return_url"),
            "url": f"{self.url}/billing_portal/{session_id}",
        }
        self._state.portal_sessions[session_id] = session
        return session

    def _retrieve_setup_intent(self, now: int, params: JSON, id: str) -> JSON:
        intent = self._state.setup_intents.get(id)
        if intent is None:
            raise _no_such("setup_intent", id, param="intent", status=404)
        return intent

    def _new_payment_method(self, customer_id: str | None, now: int) -> JSON:
        method_id = _new_id("pm", 24)
        method: JSON = {
            "id": method_id,
            "object": "payment_method",
            "billing_details": {"address": None, "email": None, "name": None, "phone": None},
            "card": {"brand": "visa", "country": "US", "exp_month": 12, "exp_year": 2034, "last4": "4242"},
            "created": now,
            "customer": customer_id,
            "livemode": False,
            "metadata": {},
            "type": "card",
        }
        self._state.payment_methods[method_id] = method
        return method

    # -- invoices ----------------------------------------------------------

    def _list_invoices(self, now: int, params: JSON) -> JSON:
        def wanted(invoice: JSON) -> bool:
            parent = invoice["parent"]["subscription_details"] or {}
            return (
                params.get("customer", invoice["customer"]) == invoice["customer"]
                and params.get("subscription", parent.get("subscription")) == parent.get("subscription")
                and params.get("status", invoice["status"]) == invoice["status"]
                and params.get("collection_method", invoice["collection_method"]) == invoice["collection_method"]
            )

        invoices = [invoice for invoice in self._state.invoices.values() if wanted(invoice)]
        return self._page(invoices, params, "/v1/invoices", "invoice")

    def _list_subscriptions(self, now: int, params: JSON) -> JSON:
        """By customer and status; without ``status`` Stripe lists all but canceled ones, ``all`` lists every one."""
        status = params.get("status")

        def wanted(subscription: JSON) -> bool:
            if params.get("customer", subscription["customer"]) != subscription["customer"]:
                return False
            if status is None:
                return subscription["status"] != "canceled"
            return status == "all" or status == subscription["status"]

        found = [subscription for subscription in self._state.subscriptions.values() if wanted(subscription)]
        return self._page(found, params, "/v1/subscriptions", "subscription")

    def _retrieve_invoice(self, now: int, params: JSON, id: str) -> JSON:
        invoice = self._state.invoices.get(id)
        if invoice is None:
            raise _no_such("invoice", id, param="id", status=404)
        return invoice

    def _issue_invoice(self, subscription: JSON, now: int, *, cycle: bool) -> JSON:
        """Finalize an invoice: licensed items and metered usage (if ``cycle``) plus pending items."""
        customer = self._state.customers[subscription["customer"]]
        invoice_id = _new_id("in", 24)
        currency = subscription["currency"]
        lines: list[JSON] = []

        def line(amount: int, description: str, item: JSON, quantity: Any, period: JSON, **parent: Any) -> None:
            price = item["price"]
            lines.append(
                {
                    "id": _new_id("il", 24),
                    "object": "line_item",
                    "amount": amount,
                    "currency": currency,
                    "description": description,
                    "discount_amounts": [],
                    "discountable": True,
                    "discounts": [],
                    "invoice": invoice_id,
                    "livemode": False,
                    "metadata": {},
                    "parent": {
                        "type": "subscription_item_details",
                        "invoice_item_details": None,
                        "subscription_item_details": {
                            "invoice_item": None,
                            "proration": False,
                            "proration_details": {"credited_items": None},
                            "subscription": subscription["id"],
                            "subscription_item": item["id"],
                            **parent,
                        },
                    },
                    "period": period,
                    "pretax_credit_amounts": [],
                    "pricing": {
                        "type": "price_details",
                        "price_details": {"price": price["id"], "product": price["product"]},
                        "unit_amount_decimal": price["unit_amount_decimal"],
                    },
                    "quantity": quantity,
                    "subtotal": amount,
                    "taxes": [],
                }
            )

        items = subscription["items"]["data"]
        period_start, period_end = items[0]["current_period_start"], items[0]["current_period_end"]
        if cycle:
            for item in items:
                price = item["price"]
                product = self._state.products[price["product"]]
                period = {"start": item["current_period_start"], "end": item["current_period_end"]}
                interval = price["recurring"]["interval"]
                if price["recurring"]["usage_type"] == "licensed":
                    amount = item["quantity"] * price["unit_amount"]
                    if self._is_first_partial_period(subscription, item):
                        count = price["recurring"]["interval_count"]
                        full = period["end"] - add_interval(period["end"], interval, -count)
                        amount = (
                            _round_half_away(Fraction(amount * (period["end"] - period["start"]), full))
                            if self._state.private[subscription["id"]]["prorate_first_period"]
                            else 0
                        )
                    description = (
                        f"{item['quantity']} × {product['name']} "
                        f"(at {_money(price['unit_amount'], currency)} / {interval})"
                    )
                    line(amount, description, item, item["quantity"], period)
                else:
                    usage = self._bill_usage(price["recurring"]["meter"], subscription["customer"])
                    if usage:
                        amount = _round_half_away(Fraction(usage) * Fraction(Decimal(price["unit_amount_decimal"])))
                        quantity = int(usage) if usage == usage.to_integral_value() else float(usage)
                        description = f"{quantity} × {product['name']} (at {price['unit_amount_decimal']} {currency} minor units)"
                        line(amount, description, item, quantity, period)
        for pending in list(self._state.invoice_items.values()):
            if pending["customer"] != subscription["customer"] or pending["invoice"] is not None:
                continue
            pending["invoice"] = invoice_id
            details = pending["parent"]["subscription_details"]
            item = next((i for i in items if i["id"] == details["subscription_item"]), None)
            price = self._state.prices[pending["pricing"]["price_details"]["price"]]
            line(
                pending["amount"],
                pending["description"],
                item or {"id": details["subscription_item"], "price": price},
                pending["quantity"],
                pending["period"],
                invoice_item=pending["id"],
                proration=pending["proration"],
                subscription=details["subscription"],
            )
        total = sum(entry["amount"] for entry in lines)
        sequence = customer["next_invoice_sequence"]
        customer["next_invoice_sequence"] = sequence + 1
        charge = subscription["collection_method"] == "charge_automatically"
        invoice: JSON = {
            "id": invoice_id,
            "object": "invoice",
            "account_country": "US",
            "amount_due": total,
            "amount_overpaid": 0,
            "amount_paid": 0,
            "amount_remaining": total,
            "attempt_count": 0,
            "attempted": False,
            "auto_advance": True,
            "billing_reason": "subscription_cycle" if cycle else "subscription_update",
            "collection_method": subscription["collection_method"],
            "created": now,
            "currency": currency,
            "customer": customer["id"],
            "customer_email": customer["email"],
            "customer_name": customer["name"],
            "default_payment_method": subscription["default_payment_method"],
            "description": None,
            "due_date": None if charge else now + (subscription["days_until_due"] or 0) * 86400,
            "effective_at": now,
            "hosted_invoice_url": f"{self.url}/invoices/{invoice_id}",
            "invoice_pdf": f"{self.url}/invoices/{invoice_id}/pdf",
            "lines": _list_object(lines, f"/v1/invoices/{invoice_id}/lines"),
            "livemode": False,
            "metadata": {},
            "next_payment_attempt": now + 3600 if charge and total > 0 else None,
            "number": f"{customer['invoice_prefix']}-{sequence:04d}",
            "parent": {
                "type": "subscription_details",
                "quote_details": None,
                "subscription_details": {
                    "metadata": dict(subscription["metadata"]),
                    "subscription": subscription["id"],
                    "subscription_proration_date": None,
                },
            },
            "period_end": period_end,
            "period_start": period_start,
            "status": "open",
            "status_transitions": {
                "finalized_at": now,
                "marked_uncollectible_at": None,
                "paid_at": None,
                "voided_at": None,
            },
            "subtotal": total,
            "subtotal_excluding_tax": total,
            "total": total,
            "total_discount_amounts": [],
            "total_excluding_tax": total,
            "total_taxes": [],
        }
        self._state.invoices[invoice_id] = invoice
        subscription["latest_invoice"] = invoice_id
        return invoice

    def _is_first_partial_period(self, subscription: JSON, item: JSON) -> bool:
        return (
            item["current_period_start"] == subscription["start_date"]
            and subscription["billing_cycle_anchor"] > subscription["start_date"]
        )

    def _bill_usage(self, meter_id: str, customer_id: str) -> Decimal:
        meter = self._state.meters[meter_id]
        key = (meter["event_name"], customer_id)
        events = self._state.meter_events.get(key, [])
        billed = self._state.meter_billed.get(key, 0)
        self._state.meter_billed[key] = len(events)
        return _aggregate(events[billed:], meter["default_aggregation"]["formula"])

    def _invoice_prorations_now(self, subscription: JSON, now: int) -> None:
        if any(
            item["customer"] == subscription["customer"] and item["invoice"] is None
            for item in self._state.invoice_items.values()
        ):
            self._issue_invoice(subscription, now, cycle=False)

    # -- Python helpers standing in for things outside the API ---------------

    def add_payment_method(self, customer_id: str) -> str:
        """Attach a new card payment method to the customer (as a finished setup would); return its id."""
        with self._lock:
            self._customer(customer_id)
            return self._new_payment_method(customer_id, self._now())["id"]

    def complete_checkout(self, session_id: str, *, set_as_default: bool = True) -> JSON:
        """The customer finishes the hosted setup page: a SetupIntent succeeds with a new card.

        Real Stripe attaches that payment method to the customer but does *not*
        make it the invoice default; integrations do that themselves (typically on
        ``checkout.session.completed``, reading the SetupIntent).  By default this
        helper also sets ``invoice_settings.default_payment_method``; pass
        ``set_as_default=False`` to get exactly Stripe's behaviour.
        """
        with self._lock:
            now = self._now()
            session = self._state.checkout_sessions[session_id]
            if session["status"] != "open":
                raise ValueError(f"checkout session {session_id} is {session['status']}, not open")
            method = self._new_payment_method(session["customer"], now)
            intent_id = _new_id("seti", 24)
            setup_data = self._state.private[session_id]["setup_intent_data"]
            self._state.setup_intents[intent_id] = {
                "id": intent_id,
                "object": "setup_intent",
                "created": now,
                "customer": session["customer"],
                "description": setup_data.get("description"),
                "livemode": False,
                "metadata": _apply_metadata({}, setup_data.get("metadata")),
                "payment_method": method["id"],
                "payment_method_types": session["payment_method_types"],
                "status": "succeeded",
                "usage": "off_session",
            }
            if set_as_default and session["customer"] is not None:
                customer = self._state.customers[session["customer"]]
                customer["invoice_settings"]["default_payment_method"] = method["id"]
            session.update(status="complete", setup_intent=intent_id)
            return _copy(session)

    def create_invoice(self, subscription_id: str) -> JSON:
        """Stripe issuing the invoice for the subscription's current period (finalized, "open").

        Lines: each licensed item (quantity × unit amount; the first period before a
        later ``billing_cycle_anchor`` prorated), metered usage not yet invoiced
        (meter aggregate × unit amount), and all of the customer's pending invoice
        items (prorations), which are consumed.
        """
        with self._lock:
            now = self._now()
            subscription = self._state.subscriptions[subscription_id]
            self._refresh(subscription, now)
            return _copy(self._issue_invoice(subscription, now, cycle=True))

    def pay_invoice(self, invoice_id: str) -> JSON:
        """A successful payment attempt: the invoice becomes "paid"; a past_due subscription active."""
        with self._lock:
            now = self._now()
            invoice = self._state.invoices[invoice_id]
            if invoice["status"] != "open":
                raise ValueError(f"invoice {invoice_id} is {invoice['status']}, not open")
            invoice.update(
                status="paid",
                amount_paid=invoice["amount_due"],
                amount_remaining=0,
                attempted=True,
                attempt_count=invoice["attempt_count"] + 1,
                next_payment_attempt=None,
            )
            invoice["status_transitions"]["paid_at"] = now
            subscription = self._invoice_subscription(invoice)
            if subscription is not None and subscription["status"] == "past_due":
                subscription["status"] = "active"
            return _copy(invoice)

    def fail_invoice(self, invoice_id: str, *, retry_in_s: int = 3 * 86400) -> JSON:
        """A failed payment attempt: stays "open", ``attempt_count`` + 1, next attempt scheduled;
        an automatically charged subscription becomes ``past_due``, as at Stripe."""
        with self._lock:
            now = self._now()
            invoice = self._state.invoices[invoice_id]
            if invoice["status"] != "open":
                raise ValueError(f"invoice {invoice_id} is {invoice['status']}, not open")
            invoice.update(
                attempted=True, attempt_count=invoice["attempt_count"] + 1, next_payment_attempt=now + retry_in_s
            )
            subscription = self._invoice_subscription(invoice)
            if (
                subscription is not None
                and subscription["status"] == "active"
                and invoice["collection_method"] == "charge_automatically"
            ):
                subscription["status"] = "past_due"
            return _copy(invoice)

    def _invoice_subscription(self, invoice: JSON) -> JSON | None:
        details = invoice["parent"]["subscription_details"]
        return self._state.subscriptions.get(details["subscription"]) if details else None


def _aggregate(events: list[JSON], formula: str) -> Decimal:
    if formula == "count":
        return Decimal(len(events))
    if formula == "last":
        if not events:
            return Decimal(0)
        latest = max(range(len(events)), key=lambda index: (events[index]["timestamp"], index))
        return Decimal(events[latest]["value"])
    return sum((Decimal(e["value"]) for e in events), Decimal(0))


def _canonical(params: JSON) -> str:
    return json.dumps(params, sort_keys=True, separators=(",", ":"))


def iter_routes() -> Iterator[tuple[str, str]]:
    """(method, path pattern) of every endpoint the double answers."""
    for route in _ROUTES:
        yield route.method, route.pattern.pattern
