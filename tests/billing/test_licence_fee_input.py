from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from hypothesis import given
from hypothesis import strategies as st

from billing.fees import escrow_fee
from billing.models import LicenceAgreement
from billing.services import licence_create
from records.models import AuditEntry
from tests.conftest import signed_in_client
from tests.factories import make_subscription


def admin_add(client, customer, product, fee: str):
    return client.post(
        "/admin/billing/licenceagreement/add/",
        {
            "customer": customer.pk,
            "product": product.pk,
            "annual_fee": fee,
            "currency": "EUR",
            "start_date": "2026-01-01",
        },
    )


@pytest.mark.parametrize(
    ("fee", "message"),
    [
        ("-1.00", "The licence fee cannot be negative."),
        ("twelve", "Enter a number."),
        ("100.001", "Ensure that there are no more than 2 decimal places."),
        ("1e400", "Ensure that there are no more than 12 digits in total."),
        ("NaN", "Enter a number."),
        ("", "This field is required."),
        ("99999999999.00", "Ensure that there are no more than 12 digits in total."),
    ],
)
def test_the_admin_refuses_a_bad_licence_fee_on_the_field(
    fee, message, staff, organisation_b, product
) -> None:
    client = signed_in_client(staff)
    audit_before = AuditEntry.objects.count()
    response = admin_add(client, organisation_b, product, fee)
    assert response.status_code == 200  # the form again, not a redirect
    errors = response.context["adminform"].form.errors
    assert message in errors["annual_fee"]
    assert not LicenceAgreement.objects.filter(customer=organisation_b).exists()
    assert AuditEntry.objects.count() == audit_before


def test_the_admin_records_a_good_licence_and_audits_it(staff, organisation_b, product) -> None:
    response = admin_add(signed_in_client(staff), organisation_b, product, "12345.67")
    assert response.status_code == 302
    licence = LicenceAgreement.objects.get(customer=organisation_b)
    assert licence.annual_fee == Decimal("12345.67")
    entry = AuditEntry.objects.get(action="admin.licenceagreement.add")
    assert entry.actor == staff
    assert entry.object_id == str(licence.pk)


@pytest.mark.parametrize("fee", [Decimal("-0.01"), Decimal("1.005")])
def test_the_service_refuses_a_bad_licence_fee(fee, staff, organisation_b, product) -> None:
    with pytest.raises(ValidationError) as refused:
        licence_create(
            customer=organisation_b,
            product=product,
            annual_fee=fee,
            currency="EUR",
            start_date=date(2026, 1, 1),
            actor=staff,
        )
    assert "annual_fee" in refused.value.message_dict
    assert not LicenceAgreement.objects.exists()


@pytest.mark.parametrize(
    ("licence_fee", "rate", "expected"),
    [
        (Decimal("12000.00"), Decimal("0.05"), Decimal("600.00")),
        (Decimal("4999.99"), Decimal("0.05"), Decimal("250.00")),  # 249.9995 rounds half-up
        (Decimal("0.10"), Decimal("0.05"), Decimal("0.01")),  # 0.005 rounds up, not to even
        (Decimal("0.30"), Decimal("0.05"), Decimal("0.02")),  # 0.015 -> 0.02
        (Decimal("0.00"), Decimal("0.05"), Decimal("0.00")),
    ],
)
def test_the_escrow_fee_is_rounded_half_up_to_the_cent(licence_fee, rate, expected) -> None:
    assert escrow_fee(annual_licence_fee=licence_fee, rate=rate) == expected


@given(
    cents=st.integers(min_value=0, max_value=10**12 - 1),
    basis_points=st.integers(min_value=0, max_value=10_000),
)
def test_the_escrow_fee_is_within_half_a_cent_of_the_exact_share(cents, basis_points) -> None:
    licence_fee = Decimal(cents) / 100
    rate = Decimal(basis_points) / 10_000
    fee = escrow_fee(annual_licence_fee=licence_fee, rate=rate)
    assert fee == fee.quantize(Decimal("0.01"))
    exact = licence_fee * rate
    assert Decimal("-0.005") < fee - exact <= Decimal("0.005")


def test_a_subscription_uses_five_percent_by_default(licence, subscriber) -> None:
    subscription = make_subscription(licence=licence, actor=subscriber)
    assert subscription.fee_rate == Decimal("0.05")
    assert subscription.fee == Decimal("500.00")
