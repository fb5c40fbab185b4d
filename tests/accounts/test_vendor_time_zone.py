"""A vendor's time zone, set by staff in the admin: only an IANA name is taken."""

from __future__ import annotations

import pytest

from accounts.models import Organisation
from tests.conftest import signed_in_client


def add_vendor(staff, time_zone: str):
    return signed_in_client(staff).post(
        "/admin/accounts/organisation/add/",
        {
            "name": "Fabrikam Inc.",
            "kind": "vendor",
            "country": "US",
            "vat_number": "",
            "contact_email": "legal@fabrikam.example",
            "address": "1 Main Street, Springfield",
            "time_zone": time_zone,
        },
    )


@pytest.mark.parametrize(
    "hostile", ["EST5EDT; DROP TABLE", "../../etc/localtime", "<script>alert(1)</script>", "UTC+2"]
)
def test_a_time_zone_that_is_no_iana_name_is_refused_on_the_field(staff, hostile) -> None:
    response = add_vendor(staff, hostile)
    assert response.status_code == 200
    body = response.content.decode()
    assert "is not a known time zone; use an IANA name such as Europe/Amsterdam." in body
    assert "<script>alert(1)</script>" not in body
    assert not Organisation.objects.filter(name="Fabrikam Inc.").exists()


def test_a_vendor_gets_its_time_zone_or_the_default(staff, settings) -> None:
    assert add_vendor(staff, "America/Chicago").status_code == 302
    vendor = Organisation.objects.get(name="Fabrikam Inc.")
    assert vendor.effective_time_zone == "America/Chicago"
    vendor.time_zone = ""
    assert vendor.effective_time_zone == settings.ESCROW_DEFAULT_VENDOR_TIME_ZONE
