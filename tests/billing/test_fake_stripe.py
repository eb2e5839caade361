"""The local Stripe double, driven through the official library over real HTTP.

These tests pin down that ``fake_stripe.FakeStripe`` speaks Stripe's protocol the
way the ``stripe`` library (16.x, API version 2026-10-28.endive) expects it:
encoding, validation against the published request shapes, idempotent retries,
faults, prorations, metering, invoices and webhook signatures.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal

import httpx
import pytest
import stripe
import time_machine
from fake_stripe import FakeStripe, event, sign

# stripe 16.1's HTTPXClient hands the encoded form to httpx as data=<str>, which
# httpx 0.28 deprecates; that is the library's business, not these tests'.
pytestmark = pytest.mark.filterwarnings("ignore:Use 'content=<...>' to upload raw bytes/text content.")

API_KEY = "sk_test_kefu"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
DAY = 86400


def make_client(
    server: FakeStripe, *, timeout: float = 5.0, retries: int = 2, api_key: str = API_KEY
) -> tuple[stripe.StripeClient, stripe.HTTPXClient]:
    # HTTPXClient is async-only unless allow_sync_methods=True; its timeout is
    # the httpx timeout (seconds, or an httpx.Timeout).
    http = stripe.HTTPXClient(timeout=timeout, allow_sync_methods=True)
    client = stripe.StripeClient(
        api_key, base_addresses={"api": server.url}, max_network_retries=retries, http_client=http
    )
    return client, http


@pytest.fixture
def server() -> Iterator[FakeStripe]:
    with FakeStripe(api_key=API_KEY) as fake:
        yield fake


@pytest.fixture
def client(server: FakeStripe) -> Iterator[stripe.StripeClient]:
    client, http = make_client(server)
    yield client
    http.close()


@pytest.fixture
def raw(server: FakeStripe) -> Iterator[httpx.Client]:
    """Plain HTTP, for requests the typed library would not let us send."""
    headers = {"Authorization": f"Bearer {API_KEY}", "Stripe-Version": stripe.api_version}
    with httpx.Client(base_url=server.url, headers=headers, timeout=5) as http:
        yield http


def seat_catalog(client: stripe.StripeClient, unit_amount: int = 1500) -> tuple[str, str]:
    """(customer id, licensed monthly seat price id)."""
    customer = client.v1.customers.create(params={"name": "Acme", "email": "ops@acme.test"})
    product = client.v1.products.create(params={"name": "Kefu seat"})
    price = client.v1.prices.create(
        params={
            "currency": "usd",
            "unit_amount": unit_amount,
            "product": product.id,
            "recurring": {"interval": "month", "usage_type": "licensed"},
            "lookup_key": f"seat_{unit_amount}",
        }
    )
    return customer.id, price.id


def subscribe(client: stripe.StripeClient, customer: str, price: str, quantity: int) -> stripe.Subscription:
    return client.v1.subscriptions.create(
        params={
            "customer": customer,
            "items": [{"price": price, "quantity": quantity}],
            "proration_behavior": "create_prorations",
            "metadata": {"tenant_id": "t-1"},
        },
        options={"idempotency_key": f"sub-{customer}"},
    )


# --------------------------------------------------------------------------
# Objects and the wire protocol


def test_objects_are_created_and_read_back(server: FakeStripe, client: stripe.StripeClient) -> None:
    with time_machine.travel(datetime(2026, 1, 31, 9, 30, tzinfo=UTC), tick=False):
        now = int(time.time())
        customer = client.v1.customers.create(
            params={"name": "Acme", "email": "ops@acme.test", "metadata": {"tenant_id": "t-1"}},
            options={"idempotency_key": "cust-t-1"},
        )
        assert customer.id.startswith("cus_") and customer.object == "customer"
        assert customer.created == now and customer.livemode is False
        assert customer.metadata.to_dict() == {"tenant_id": "t-1"}

        updated = client.v1.customers.update(customer.id, params={"email": "billing@acme.test", "metadata": {"x": "1"}})
        assert updated.email == "billing@acme.test"
        assert updated.metadata.to_dict() == {"tenant_id": "t-1", "x": "1"}  # metadata merges
        assert client.v1.customers.retrieve(customer.id).email == "billing@acme.test"

        product = client.v1.products.create(params={"name": "Kefu seat", "metadata": {"kind": "seat"}})
        seat = client.v1.prices.create(
            params={
                "currency": "usd",
                "unit_amount": 1500,
                "product": product.id,
                "recurring": {"interval": "month", "usage_type": "licensed"},
                "nickname": "Seat",
                "lookup_key": "kefu_seat_monthly",
            }
        )
        assert seat.id.startswith("price_") and seat.type == "recurring"
        assert seat.recurring is not None and seat.recurring.usage_type == "licensed"
        assert client.v1.prices.retrieve(seat.id).lookup_key == "kefu_seat_monthly"

        meter = client.v1.billing.meters.create(
            params={
                "display_name": "Overage minutes",
                "event_name": "kefu_overage_minutes",
                "default_aggregation": {"formula": "sum"},
                "customer_mapping": {"event_payload_key": "stripe_customer_id", "type": "by_id"},
                "value_settings": {"event_payload_key": "value"},
            }
        )
        assert meter.id.startswith("mtr_") and meter.object == "billing.meter" and meter.status == "active"
        meters = client.v1.billing.meters.list(params={"limit": 10})
        assert [m.id for m in meters.data] == [meter.id] and meters.has_more is False

        minutes = client.v1.prices.create(
            params={
                "currency": "usd",
                "unit_amount": 2,
                "product": product.id,
                "recurring": {"interval": "month", "usage_type": "metered", "meter": meter.id},
            }
        )
        subscription = client.v1.subscriptions.create(
            params={
                "customer": customer.id,
                "items": [{"price": seat.id, "quantity": 3}, {"price": minutes.id}],
                "collection_method": "charge_automatically",
                "payment_behavior": "allow_incomplete",
                "metadata": {"tenant_id": "t-1"},
                "expand": ["customer"],
            },
            options={"idempotency_key": "sub-t-1"},
        )
        assert subscription.id.startswith("sub_") and subscription.status == "active"
        assert isinstance(subscription.customer, stripe.Customer) and subscription.customer.id == customer.id
        items = subscription["items"]
        assert items.object == "list" and len(items.data) == 2
        licensed, metered = items.data
        assert licensed.id.startswith("si_") and licensed.quantity == 3 and licensed.price.id == seat.id
        assert "quantity" not in metered  # Stripe shows no quantity on metered items
        # 2026 API: periods live on the items; one calendar month, day clamped (Jan 31 -> Feb 28)
        assert licensed.current_period_start == now
        assert licensed.current_period_end == int(datetime(2026, 2, 28, 9, 30, tzinfo=UTC).timestamp())
        assert "current_period_end" not in subscription

    with time_machine.travel(datetime(2026, 3, 1, tzinfo=UTC), tick=False):
        renewed = client.v1.subscriptions.retrieve(subscription.id)["items"].data[0]
        # renewals keep the anchor's day of month: Feb 28 -> Mar 31
        assert renewed.current_period_start == int(datetime(2026, 2, 28, 9, 30, tzinfo=UTC).timestamp())
        assert renewed.current_period_end == int(datetime(2026, 3, 31, 9, 30, tzinfo=UTC).timestamp())

        canceled = client.v1.subscriptions.cancel(subscription.id)
        assert canceled.status == "canceled" and canceled.ended_at == int(time.time())


def test_wire_protocol(server: FakeStripe, client: stripe.StripeClient, raw: httpx.Client) -> None:
    customer = client.v1.customers.create(params={"name": "Acme"}, options={"idempotency_key": "k-wire"})
    response = raw.get(f"/v1/customers/{customer.id}")
    assert response.status_code == 200
    assert response.headers["request-id"].startswith("req_")
    assert response.headers["stripe-version"] == stripe.api_version
    assert response.json()["id"] == customer.id

    # what the library actually put on the wire
    (create,) = server.requests_to("POST", "/v1/customers")
    assert create.params == {"name": "Acme"}
    assert create.idempotency_key == "k-wire" and create.stripe_version == stripe.api_version
    assert create.headers["authorization"] == f"Bearer {API_KEY}"
    assert create.headers["content-type"] == "application/x-www-form-urlencoded"

    # the library sends every list indexed (expand[0]=...); the double decodes it into a list,
    # and takes Stripe's other spelling, expand[], as well
    client.v1.customers.retrieve(customer.id, params={"expand": ["invoice_settings.default_payment_method"]})
    assert server.requests[-1].raw == "expand[0]=invoice_settings.default_payment_method"
    assert server.requests[-1].params == {"expand": ["invoice_settings.default_payment_method"]}
    assert raw.get(f"/v1/customers/{customer.id}?expand[]=invoice_settings.default_payment_method").status_code == 200

    no_key = httpx.get(f"{server.url}/v1/customers/{customer.id}")
    assert no_key.status_code == 401 and no_key.json()["error"]["type"] == "invalid_request_error"
    assert no_key.headers["request-id"].startswith("req_")
    bad_key = httpx.get(
        f"{server.url}/v1/customers/{customer.id}", headers={"Authorization": "Bearer sk_test_nope1234"}
    )
    assert bad_key.status_code == 401
    assert bad_key.json()["error"]["message"].startswith("Invalid API Key provided: sk_test_")
    other_key, other_http = make_client(server, api_key="sk_test_other")
    with pytest.raises(stripe.AuthenticationError):
        other_key.v1.customers.retrieve(customer.id)
    other_http.close()

    missing = raw.get("/v1/customers/cus_x")
    assert missing.status_code == 404
    error = missing.json()["error"]
    assert (error["type"], error["code"], error["param"]) == ("invalid_request_error", "resource_missing", "id")
    assert error["message"] == "No such customer: 'cus_x'"
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.subscriptions.retrieve("sub_missing")
    assert caught.value.code == "resource_missing" and caught.value.http_status == 404

    unknown = raw.get("/v1/charges")
    assert unknown.status_code == 404
    assert unknown.json()["error"]["message"].startswith("Unrecognized request URL (GET: /v1/charges)")

    other_version = raw.get(f"/v1/customers/{customer.id}", headers={"Stripe-Version": "2024-06-20"})
    assert other_version.status_code == 400
    assert other_version.headers["stripe-version"] == "2024-06-20"


# --------------------------------------------------------------------------
# Validation against Stripe's published request shapes


@pytest.mark.parametrize(
    ("path", "body", "code", "param"),
    [
        ("/v1/customers", "nmae=Acme", "parameter_unknown", "nmae"),
        ("/v1/subscriptions", "customer=cus_1&items[0][price]=p&items[0][foo]=1", "parameter_unknown",
         "items[0][foo]"),
        ("/v1/billing/meters", "display_name=M&default_aggregation[formula]=sum", "parameter_missing", "event_name"),
        ("/v1/billing/meter_events", "event_name=kefu_overage_minutes", "parameter_missing", "payload"),
        ("/v1/subscriptions", "customer=cus_1&proration_behavior=sometimes", "parameter_invalid_string",
         "proration_behavior"),
        ("/v1/subscriptions", "customer=cus_1&items[0][price]=p&items[0][quantity]=many",
         "parameter_invalid_integer", "items[0][quantity]"),
        ("/v1/subscriptions", "customer=cus_1&cancel_at_period_end=yes", "parameter_invalid_boolean",
         "cancel_at_period_end"),
        ("/v1/customers", "email=", "parameter_invalid_empty", "email"),
        # API 2026-10-28: Checkout's payment_method_types became allowed_payment_method_types
        ("/v1/checkout/sessions", "mode=setup&currency=usd&payment_method_types[0]=card", "parameter_unknown",
         "payment_method_types"),
        ("/v1/subscriptions", "customer=cus_1&trial_period_days=7", "fake_stripe_unmodelled", "trial_period_days"),
    ],
)
def test_requests_are_validated_against_stripes_shapes(
    server: FakeStripe, raw: httpx.Client, path: str, body: str, code: str, param: str
) -> None:
    response = raw.post(path, content=body, headers={**FORM, "Idempotency-Key": f"bad-{code}"})
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert (error["type"], error["code"], error["param"]) == ("invalid_request_error", code, param)
    assert server.objects("customer") == [] and server.objects("subscription") == []


def test_validation_messages_and_library_errors(server: FakeStripe, client: stripe.StripeClient) -> None:
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.customers.create(params={"name": "Acme", "nmae": "typo"})  # type: ignore[typeddict-unknown-key]
    assert caught.value.code == "parameter_unknown" and caught.value.param == "nmae"
    assert caught.value.user_message == "Received unknown parameter: nmae"

    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.billing.meter_events.create(params={"event_name": "x"})  # type: ignore[typeddict-item]
    assert caught.value.code == "parameter_missing" and caught.value.user_message == "Missing required param: payload."

    customer, price = seat_catalog(client)
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.subscriptions.create(
            params={"customer": customer, "items": [{"price": price}], "proration_behavior": "sometimes"}
        )
    assert caught.value.code == "parameter_invalid_string"
    assert caught.value.user_message == (
        "Invalid proration_behavior: must be one of always_invoice, create_prorations, or none"
    )

    # a referenced object that does not exist is a 400 on the parameter
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.subscriptions.create(params={"customer": "cus_nope", "items": [{"price": price}]})
    assert (caught.value.http_status, caught.value.code, caught.value.param) == (400, "resource_missing", "customer")


def test_a_rejected_request_changes_nothing_and_keeps_its_key_free(
    server: FakeStripe, client: stripe.StripeClient, raw: httpx.Client
) -> None:
    customer, price = seat_catalog(client)
    bad = raw.post(
        "/v1/subscriptions",
        content=f"customer={customer}&items[0][price]={price}&items[1][price]=price_nope",
        headers={**FORM, "Idempotency-Key": "k-atomic"},
    )
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "items[1][price]"
    assert server.objects("subscription") == []  # the first item was not half-applied
    # the shape was valid, so the request executed and failed: Stripe stores that
    # answer under the key, and the same request replays it
    again = raw.post(
        "/v1/subscriptions",
        content=f"customer={customer}&items[0][price]={price}&items[1][price]=price_nope",
        headers={**FORM, "Idempotency-Key": "k-atomic"},
    )
    assert again.status_code == 400 and again.headers["idempotent-replayed"] == "true"

    # a request that fails parameter validation stores nothing: the key stays free
    unknown = raw.post("/v1/customers", content="nmae=x", headers={**FORM, "Idempotency-Key": "k-free"})
    assert unknown.status_code == 400
    fixed = raw.post("/v1/customers", content="name=x", headers={**FORM, "Idempotency-Key": "k-free"})
    assert fixed.status_code == 200 and "idempotent-replayed" not in fixed.headers


def test_metered_items_take_no_quantity(server: FakeStripe, client: stripe.StripeClient) -> None:
    customer, _ = seat_catalog(client)
    meter = client.v1.billing.meters.create(
        params={"display_name": "M", "event_name": "kefu_overage_minutes", "default_aggregation": {"formula": "sum"}}
    )
    product = client.v1.products.create(params={"name": "Minutes"})
    with pytest.raises(stripe.InvalidRequestError) as caught:  # 2026: metered prices need a meter
        client.v1.prices.create(
            params={"currency": "usd", "unit_amount": 2, "product": product.id,
                    "recurring": {"interval": "month", "usage_type": "metered"}}
        )
    assert caught.value.param == "recurring[meter]"
    minutes = client.v1.prices.create(
        params={"currency": "usd", "unit_amount": 2, "product": product.id,
                "recurring": {"interval": "month", "usage_type": "metered", "meter": meter.id}}
    )
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.subscriptions.create(params={"customer": customer, "items": [{"price": minutes.id, "quantity": 1}]})
    assert caught.value.param == "items[0][quantity]"


def test_expand(server: FakeStripe, client: stripe.StripeClient) -> None:
    customer, price = seat_catalog(client)
    subscription = subscribe(client, customer, price, 2)
    expanded = client.v1.subscriptions.retrieve(
        subscription.id, params={"expand": ["customer", "items.data.price.product"]}
    )
    assert expanded.customer.email == "ops@acme.test"  # type: ignore[union-attr]
    assert expanded["items"].data[0].price.product.name == "Kefu seat"
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.subscriptions.retrieve(subscription.id, params={"expand": ["status"]})
    assert caught.value.user_message == "This property cannot be expanded (status)."


# --------------------------------------------------------------------------
# Idempotency


def test_idempotent_replay_applies_once(server: FakeStripe, client: stripe.StripeClient) -> None:
    first = client.v1.customers.create(params={"name": "Acme"}, options={"idempotency_key": "cust-1"})
    second = client.v1.customers.create(params={"name": "Acme"}, options={"idempotency_key": "cust-1"})
    assert second.id == first.id
    assert first.last_response is not None and second.last_response is not None
    assert "idempotent-replayed" not in first.last_response.headers
    assert second.last_response.headers["idempotent-replayed"] == "true"
    assert second.last_response.idempotency_key == "cust-1"
    assert len(server.objects("customer")) == 1
    assert [r.replayed for r in server.requests_to("POST", "/v1/customers")] == [False, True]

    with pytest.raises(stripe.IdempotencyError) as caught:
        client.v1.customers.create(params={"name": "Other"}, options={"idempotency_key": "cust-1"})
    assert caught.value.http_status == 400
    assert caught.value.user_message is not None and caught.value.user_message.startswith(
        "Keys for idempotent requests can only be used with the same parameters they were first used with."
    )
    assert len(server.objects("customer")) == 1

    # without an explicit key the library still sends a fresh one on every POST
    client.v1.customers.create(params={"name": "Acme"})
    client.v1.customers.create(params={"name": "Acme"})
    generated = [r.idempotency_key for r in server.requests_to("POST", "/v1/customers")[-2:]]
    assert all(generated) and generated[0] != generated[1]
    assert len(server.objects("customer")) == 3


# --------------------------------------------------------------------------
# Prorations, invoices, metering, Checkout



def test_proration_amount_for_a_quantity_change(server: FakeStripe, client: stripe.StripeClient) -> None:
    with time_machine.travel(datetime(2026, 3, 1, tzinfo=UTC), tick=False):
        customer, price = seat_catalog(client, unit_amount=1500)
        subscription = subscribe(client, customer, price, 10)
        item = subscription["items"].data[0]
        assert item.current_period_end - item.current_period_start == 31 * DAY  # March

    with time_machine.travel(datetime(2026, 3, 17, tzinfo=UTC), tick=False):  # 15 of 31 days remain
        at = int(time.time())
        changed = client.v1.subscription_items.update(
            item.id, params={"quantity": 12}, options={"idempotency_key": "seats-12"}
        )
        assert changed.quantity == 12
        (increase,) = server.pending_invoice_items(customer)
        # 1500 × (12 − 10) × 15/31 = 1451.61… → 1452
        assert increase["amount"] == 1452 and increase["proration"] is True
        assert increase["period"] == {"start": at, "end": item.current_period_end}
        assert increase["parent"]["subscription_details"] == {"subscription": subscription.id,
                                                             "subscription_item": item.id}
        assert server.quantity_changes == [(item.id, 10, 12, at)]

    with time_machine.travel(datetime(2026, 3, 25, 12, tzinfo=UTC), tick=False):  # 6.5 of 31 days remain
        client.v1.subscriptions.update(subscription.id, params={"items": [{"id": item.id, "quantity": 9}]})
        # 1500 × (9 − 12) × 6.5/31 = −943.55… → −944
        assert server.pending_invoice_items(customer)[-1]["amount"] == -944
        client.v1.subscription_items.update(item.id, params={"quantity": 8, "proration_behavior": "none"})
        assert len(server.pending_invoice_items(customer)) == 2  # "none" prorates nothing
        assert [change[1:3] for change in server.quantity_changes] == [(10, 12), (12, 9), (9, 8)]


def test_invoices_bill_seats_and_consume_prorations(server: FakeStripe, client: stripe.StripeClient) -> None:
    with time_machine.travel(datetime(2026, 4, 1, tzinfo=UTC), tick=False):  # April: 30 days
        customer, price = seat_catalog(client, unit_amount=2000)
        subscription = subscribe(client, customer, price, 5)
        item = subscription["items"].data[0]
    with time_machine.travel(datetime(2026, 4, 16, tzinfo=UTC), tick=False):  # half the period remains
        client.v1.subscription_items.update(item.id, params={"quantity": 6})
        invoice = server.create_invoice(subscription.id)

    assert invoice["id"].startswith("in_") and invoice["object"] == "invoice" and invoice["status"] == "open"
    assert invoice["customer"] == customer
    assert invoice["parent"]["subscription_details"]["subscription"] == subscription.id  # 2026: no top-level field
    assert invoice["parent"]["subscription_details"]["metadata"] == {"tenant_id": "t-1"}
    seats, proration = invoice["lines"]["data"]
    assert (seats["amount"], seats["quantity"]) == (6 * 2000, 6)
    assert seats["period"] == {"start": item.current_period_start, "end": item.current_period_end}
    assert proration["amount"] == 1000  # 2000 × 1 × 15/30
    assert proration["parent"]["subscription_item_details"]["proration"] is True
    assert invoice["amount_due"] == invoice["total"] == invoice["subtotal"] == 13000
    assert invoice["currency"] == "usd" and invoice["number"].endswith("-0001")
    assert (invoice["period_start"], invoice["period_end"]) == (item.current_period_start, item.current_period_end)
    assert invoice["hosted_invoice_url"].startswith(server.url) and invoice["attempt_count"] == 0
    assert server.pending_invoice_items(customer) == []  # consumed

    listed = client.v1.invoices.list(params={"customer": customer, "status": "open", "limit": 10})
    assert [i.id for i in listed.data] == [invoice["id"]] and listed.has_more is False
    assert client.v1.invoices.list(params={"subscription": subscription.id}).data[0].id == invoice["id"]
    assert client.v1.invoices.list(params={"customer": customer, "status": "paid"}).data == []

    with time_machine.travel(datetime(2026, 4, 17, tzinfo=UTC), tick=False):
        failed = server.fail_invoice(invoice["id"])
        assert failed["status"] == "open" and failed["attempt_count"] == 1
        assert failed["next_payment_attempt"] is not None and failed["next_payment_attempt"] > time.time()
        assert client.v1.subscriptions.retrieve(subscription.id).status == "past_due"
        paid = server.pay_invoice(invoice["id"])
    assert paid["status"] == "paid" and paid["amount_paid"] == 13000 and paid["amount_remaining"] == 0
    assert client.v1.invoices.retrieve(invoice["id"]).status == "paid"
    assert client.v1.subscriptions.retrieve(subscription.id).latest_invoice == invoice["id"]

    with time_machine.travel(datetime(2026, 5, 2, tzinfo=UTC), tick=False):  # renewed for May
        renewal = server.create_invoice(subscription.id)
    (only_seats,) = renewal["lines"]["data"]
    assert only_seats["amount"] == 12000 and renewal["number"].endswith("-0002")
    assert only_seats["period"]["start"] == int(datetime(2026, 5, 1, tzinfo=UTC).timestamp())

    page = client.v1.invoices.list(params={"customer": customer, "limit": 1})
    assert [i.id for i in page.data] == [renewal["id"]] and page.has_more is True  # newest first
    rest = client.v1.invoices.list(params={"customer": customer, "limit": 1, "starting_after": renewal["id"]})
    assert [i.id for i in rest.data] == [invoice["id"]] and rest.has_more is False


def test_billing_cycle_anchor_prorates_the_first_period(server: FakeStripe, client: stripe.StripeClient) -> None:
    april_1 = int(datetime(2026, 4, 1, tzinfo=UTC).timestamp())
    with time_machine.travel(datetime(2026, 3, 10, tzinfo=UTC), tick=False):
        customer, price = seat_catalog(client, unit_amount=1500)
        prorated, free = (
            client.v1.subscriptions.create(
                params={"customer": customer, "items": [{"price": price, "quantity": 2}],
                        "billing_cycle_anchor": april_1, "proration_behavior": behavior}
            )
            for behavior in ("create_prorations", "none")
        )
        item = prorated["items"].data[0]
        assert (item.current_period_start, item.current_period_end) == (int(time.time()), april_1)
        # 2 × 1500 for 22 of March's 31 days = 2129.03… → 2129; with proration_behavior=none: free
        assert server.create_invoice(prorated.id)["lines"]["data"][0]["amount"] == 2129
        assert server.create_invoice(free.id)["lines"]["data"][0]["amount"] == 0
        with pytest.raises(stripe.InvalidRequestError) as caught:
            client.v1.subscriptions.create(
                params={"customer": customer, "items": [{"price": price}], "billing_cycle_anchor": april_1 + 40 * DAY}
            )
        assert caught.value.param == "billing_cycle_anchor"
    with time_machine.travel(datetime(2026, 4, 2, tzinfo=UTC), tick=False):
        renewed = server.create_invoice(prorated.id)["lines"]["data"][0]
        assert renewed["amount"] == 3000
        assert renewed["period"] == {"start": april_1, "end": int(datetime(2026, 5, 1, tzinfo=UTC).timestamp())}


def test_meter_events_are_totalled_once_per_identifier(server: FakeStripe, client: stripe.StripeClient) -> None:
    customer, seat = seat_catalog(client)
    meter = client.v1.billing.meters.create(
        params={"display_name": "Minutes", "event_name": "kefu_overage_minutes",
                "default_aggregation": {"formula": "sum"}}
    )
    product = client.v1.products.create(params={"name": "Overage minutes"})
    minutes = client.v1.prices.create(
        params={"currency": "usd", "unit_amount": 3, "product": product.id,
                "recurring": {"interval": "month", "usage_type": "metered", "meter": meter.id}}
    )
    subscription = client.v1.subscriptions.create(
        params={"customer": customer, "items": [{"price": seat, "quantity": 1}, {"price": minutes.id}]}
    )

    def report(identifier: str, value: int) -> stripe.billing.MeterEvent:
        return client.v1.billing.meter_events.create(
            params={"event_name": "kefu_overage_minutes", "identifier": identifier,
                    "payload": {"stripe_customer_id": customer, "value": str(value)}},
            options={"idempotency_key": f"usage-{identifier}"},
        )

    sent = report("usage-2026-03-01", 5)
    assert sent.object == "billing.meter_event" and sent.identifier == "usage-2026-03-01"
    assert sent.payload.to_dict() == {"stripe_customer_id": customer, "value": "5"}
    report("usage-2026-03-02", 2)
    assert server.meter_total("kefu_overage_minutes", customer) == Decimal(7)

    with pytest.raises(stripe.InvalidRequestError) as caught:  # same identifier, new idempotency key
        client.v1.billing.meter_events.create(
            params={"event_name": "kefu_overage_minutes", "identifier": "usage-2026-03-01",
                    "payload": {"stripe_customer_id": customer, "value": "5"}}
        )
    assert (caught.value.code, caught.value.param) == ("resource_already_exists", "identifier")
    assert report("usage-2026-03-01", 5).identifier == "usage-2026-03-01"  # idempotent replay, not an error
    assert server.meter_total("kefu_overage_minutes", customer) == 7

    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.billing.meter_events.create(
            params={"event_name": "no_such_meter", "payload": {"stripe_customer_id": customer, "value": "1"}}
        )
    assert caught.value.param == "event_name"

    first = server.create_invoice(subscription.id)
    usage = first["lines"]["data"][1]
    assert (usage["quantity"], usage["amount"]) == (7, 21)
    report("usage-2026-03-03", 4)
    second = server.create_invoice(subscription.id)
    assert second["lines"]["data"][1]["amount"] == 12  # only what was not invoiced yet
    assert server.meter_total("kefu_overage_minutes", customer) == 11


def test_checkout_setup_sets_the_default_payment_method(server: FakeStripe, client: stripe.StripeClient) -> None:
    customer = client.v1.customers.create(params={"name": "Acme"})
    session = client.v1.checkout.sessions.create(
        params={
            "mode": "setup",
            "customer": customer.id,
            "currency": "usd",
            "allowed_payment_method_types": ["card"],
            "success_url": "https://kefu.test/billing/done",
            "cancel_url": "https://kefu.test/billing",
            "metadata": {"tenant_id": "t-1"},
        }
    )
    assert session.id.startswith("cs_test_") and session.object == "checkout.session"
    assert session.status == "open" and session.url == f"{server.url}/checkout/{session.id}"
    assert client.v1.customers.retrieve(customer.id).invoice_settings.default_payment_method is None

    completed = server.complete_checkout(session.id)
    assert completed["status"] == "complete" and completed["setup_intent"].startswith("seti_")
    default = client.v1.customers.retrieve(customer.id).invoice_settings.default_payment_method
    assert isinstance(default, str) and default.startswith("pm_")
    intent = client.v1.setup_intents.retrieve(completed["setup_intent"])
    assert intent.status == "succeeded" and intent.payment_method == default
    assert client.v1.checkout.sessions.retrieve(session.id).status == "complete"

    # Stripe's own behaviour: the card is attached, the integration makes it the default
    other = client.v1.checkout.sessions.create(params={"mode": "setup", "customer": customer.id, "currency": "usd"})
    attached = server.complete_checkout(other.id, set_as_default=False)
    card = client.v1.setup_intents.retrieve(attached["setup_intent"]).payment_method
    assert client.v1.customers.retrieve(customer.id).invoice_settings.default_payment_method == default
    updated = client.v1.customers.update(customer.id, params={"invoice_settings": {"default_payment_method": card}})
    assert updated.invoice_settings.default_payment_method == card
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.customers.update(customer.id, params={"invoice_settings": {"default_payment_method": "pm_other"}})
    assert caught.value.code == "resource_missing"

    portal = client.v1.billing_portal.sessions.create(
        params={"customer": customer.id, "return_url": "https://kefu.test/billing"}
    )
    assert portal.object == "billing_portal.session" and portal.id.startswith("bps_")
    assert portal.url.startswith(server.url) and portal.return_url == "https://kefu.test/billing"


# --------------------------------------------------------------------------
# Fault injection: what the library does about it


def test_a_500_is_retried_with_the_same_key_and_applied_once(
    server: FakeStripe, client: stripe.StripeClient
) -> None:
    server.fail_next("POST", "/v1/customers", status=500)
    customer = client.v1.customers.create(params={"name": "Acme"}, options={"idempotency_key": "cust-500"})
    attempts = server.requests_to("POST", "/v1/customers")
    assert [(r.status, r.idempotency_key) for r in attempts] == [(500, "cust-500"), (200, "cust-500")]
    assert [c["id"] for c in server.objects("customer")] == [customer.id]

    server.fail_next("POST", "/v1/customers", status=503, times=3)  # more failures than retries
    with pytest.raises(stripe.APIError) as caught:
        client.v1.customers.create(params={"name": "Acme"}, options={"idempotency_key": "cust-503"})
    assert caught.value.http_status == 503
    assert len(server.requests_to("POST", "/v1/customers")) == 5
    assert len(server.objects("customer")) == 1


def test_a_429_is_not_retried_unless_stripe_says_so(server: FakeStripe, client: stripe.StripeClient) -> None:
    server.fail_next("POST", "/v1/customers", status=429)
    with pytest.raises(stripe.RateLimitError) as caught:
        client.v1.customers.create(params={"name": "Acme"}, options={"idempotency_key": "cust-429"})
    # the library keeps the error code only on the error object for RateLimitError / APIError
    assert caught.value.error is not None and caught.value.error.code == "rate_limit"
    assert caught.value.http_status == 429
    assert len(server.requests_to("POST", "/v1/customers")) == 1 and server.objects("customer") == []

    server.fail_next("POST", "/v1/customers", status=429, should_retry=True)
    client.v1.customers.create(params={"name": "Acme"}, options={"idempotency_key": "cust-429"})
    assert [r.status for r in server.requests_to("POST", "/v1/customers")] == [429, 429, 200]
    assert len(server.objects("customer")) == 1


def test_a_lost_response_is_retried_and_replayed(server: FakeStripe, client: stripe.StripeClient) -> None:
    customer, price = seat_catalog(client)
    item = subscribe(client, customer, price, 3)["items"].data[0]

    server.drop_response_next("POST", "/v1/subscription_items/")
    updated = client.v1.subscription_items.update(item.id, params={"quantity": 5}, options={"idempotency_key": "q5"})
    assert updated.quantity == 5
    attempts = server.requests_to("POST", f"/v1/subscription_items/{item.id}")
    assert [(r.status, r.replayed, r.idempotency_key) for r in attempts] == [(None, False, "q5"), (200, True, "q5")]
    assert [change[1:3] for change in server.quantity_changes] == [(3, 5)]  # applied once
    assert len(server.pending_invoice_items(customer)) == 1


def test_a_slow_answer_times_out_the_client_and_is_applied_once(
    server: FakeStripe, client: stripe.StripeClient
) -> None:
    customer, price = seat_catalog(client)
    item = subscribe(client, customer, price, 3)["items"].data[0]
    impatient, impatient_http = make_client(server, timeout=0.3, retries=0)
    try:
        hang = server.hang_next("POST", "/v1/subscription_items/", seconds=2)
        with pytest.raises(stripe.APIConnectionError):
            impatient.v1.subscription_items.update(item.id, params={"quantity": 7}, options={"idempotency_key": "q7"})
        assert hang.wait_started()
        assert server.quantity_changes == []  # a slow server has not applied it yet
        # other requests are served meanwhile
        assert client.v1.customers.retrieve(customer).id == customer
        # a retry while the first is still executing: 409, which the library would retry itself
        with pytest.raises(stripe.APIError) as caught:
            impatient.v1.subscription_items.update(item.id, params={"quantity": 7}, options={"idempotency_key": "q7"})
        assert caught.value.http_status == 409
        assert caught.value.error is not None and caught.value.error.code == "idempotency_key_in_use"

        hang.release()
        assert hang.wait_done()
        assert [change[1:3] for change in server.quantity_changes] == [(3, 7)]
        retried = client.v1.subscription_items.update(
            item.id, params={"quantity": 7}, options={"idempotency_key": "q7"}
        )
        assert retried.quantity == 7 and retried.last_response is not None
        assert retried.last_response.headers["idempotent-replayed"] == "true"
        assert len(server.quantity_changes) == 1
    finally:
        impatient_http.close()


def test_stop_does_not_wait_for_a_hanging_request() -> None:
    server = FakeStripe(api_key=API_KEY).start()
    hang = server.hang_next("POST", "/v1/customers", seconds=30)
    errors: list[Exception] = []

    def call() -> None:
        try:
            httpx.post(f"{server.url}/v1/customers", content="name=x",
                       headers={**FORM, "Authorization": f"Bearer {API_KEY}"}, timeout=10)
        except httpx.HTTPError as error:
            errors.append(error)

    caller = threading.Thread(target=call)
    caller.start()
    assert hang.wait_started()
    started = time.monotonic()
    server.stop()
    caller.join(timeout=5)
    assert time.monotonic() - started < 1.5 and not caller.is_alive()
    assert errors and server.objects("customer") == []  # abandoned unapplied, connection closed


# --------------------------------------------------------------------------
# Webhooks


def test_webhook_signatures_verify_with_the_library() -> None:
    secret = "whsec_test_kefu"
    invoice = {"id": "in_123", "object": "invoice", "status": "paid", "customer": "cus_123"}
    body = event("invoice.paid", invoice, created=1_770_000_000, event_id="evt_fixed")
    assert body["api_version"] == stripe.api_version and body["livemode"] is False
    assert body["request"] == {"id": None, "idempotency_key": None}
    payload = json.dumps(body).encode()

    verified = stripe.Webhook.construct_event(payload, sign(payload, secret), secret)
    assert verified.id == "evt_fixed" and verified.type == "invoice.paid"
    assert verified.data.object["id"] == "in_123"

    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(payload, sign(payload, "whsec_wrong"), secret)
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(payload + b" ", sign(payload, secret), secret)
    with pytest.raises(stripe.SignatureVerificationError):  # outside the library's 300 s tolerance
        stripe.Webhook.construct_event(payload, sign(payload, secret, timestamp=int(time.time()) - 600), secret)

    with time_machine.travel(datetime(2026, 6, 1, tzinfo=UTC), tick=False):
        header = sign(payload, secret)
        assert header.startswith(f"t={int(time.time())},v1=")
        stripe.WebhookSignature.verify_header(payload.decode(), header, secret, tolerance=300)


# --------------------------------------------------------------------------
# The async path the billing code uses


async def test_async_client(server: FakeStripe) -> None:
    http = stripe.HTTPXClient(timeout=5)
    client = stripe.StripeClient(API_KEY, base_addresses={"api": server.url}, max_network_retries=2, http_client=http)
    try:
        server.fail_next("POST", "/v1/customers", status=500)
        customer = await client.v1.customers.create_async(
            params={"name": "Acme", "metadata": {"tenant_id": "t-1"}}, options={"idempotency_key": "async-1"}
        )
        again = await client.v1.customers.create_async(
            params={"name": "Acme", "metadata": {"tenant_id": "t-1"}}, options={"idempotency_key": "async-1"}
        )
        assert again.id == customer.id and len(server.objects("customer")) == 1
        assert (await client.v1.customers.retrieve_async(customer.id)).metadata.to_dict() == {"tenant_id": "t-1"}
    finally:
        await http.close_async()
