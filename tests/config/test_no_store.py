"""``Cache-Control: no-store`` on every page a signed-in person sees and on every
download (config.middleware.NoStoreMiddleware); anonymous pages keep what their
views set. The login pages carry Django's own ``never_cache`` (no-store too:
they hold a CSRF token), which the middleware leaves as it is."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import AnonymousUser
from django.http import HttpRequest, HttpResponse
from django.test import Client, RequestFactory

from config.middleware import NoStoreMiddleware
from escrow.services.claims import claim_mark_uncontested, claim_notify_vendor, claim_start_review
from escrow.services.deposits import deposit_acknowledge
from escrow.services.release_keys import release_key_set
from escrow.services.releases import release_approve
from records.links import stored_file_link
from records.services.files import stored_file_put
from tests import archives
from tests.conftest import signed_in_client
from tests.deposits import deposit_through_pipeline
from tests.factories import make_active_subscription, make_claim

PASSPHRASE = "correct horse battery staple 42"


def assert_no_store(response: Any) -> None:
    assert "no-store" in response["Cache-Control"], response.get("Cache-Control")
    assert response["Pragma"] == "no-cache"


def test_a_signed_in_customer_page_is_not_stored(subscriber) -> None:
    client = signed_in_client(subscriber)
    for path in ["/portal/", "/portal/invoices/", "/portal/release-key/"]:
        response = client.get(path)
        assert response.status_code == 200, path
        assert response["Cache-Control"] == "no-store", path
        assert response["Pragma"] == "no-cache", path


def test_a_notary_page_is_not_stored(notary) -> None:
    response = signed_in_client(notary).get("/notary/")
    assert response.status_code == 200
    assert_no_store(response)


def test_an_admin_page_is_not_stored(staff) -> None:
    response = signed_in_client(staff).get("/admin/")
    assert response.status_code == 200
    assert_no_store(response)


def test_a_download_through_its_link_is_not_stored(staff) -> None:
    stored = stored_file_put(
        key="exports/sample.zip",
        source=b"PK",
        purpose="export",
        content_type="application/zip",
        filename="sample.zip",
    )
    # The link is the credential: the client downloading it has no session.
    response = Client().get(stored_file_link(stored=stored, user=staff))
    assert response.status_code == 200
    assert response["Content-Disposition"].startswith("attachment")
    assert_no_store(response)


@pytest.fixture
def fast_scrypt(settings) -> None:
    settings.ESCROW_IDENTITY_SCRYPT_WORK_FACTOR = 10


def test_the_release_page_and_the_release_key_file_are_not_stored(
    fast_scrypt, licence, product, subscriber, staff, notary, notary_identity
) -> None:
    make_active_subscription(licence=licence, actor=subscriber, staff=staff)
    deposit = deposit_through_pipeline(product=product, staff=staff, body=archives.tar_gz())
    deposit_acknowledge(deposit=deposit, notary=notary)
    release_key_set(actor=subscriber, method="passphrase", passphrase=PASSPHRASE)
    claim = make_claim(product=product, filed_by=subscriber)
    claim_notify_vendor(claim=claim)
    claim_mark_uncontested(claim=claim)
    claim_start_review(claim=claim, actor=None)
    release_approve(claim=claim, notary=notary, reasons="Insolvent.", identities=[notary_identity])
    client = signed_in_client(subscriber)
    response = client.get(f"/portal/claims/{claim.pk}/")
    assert "release-key.age" in response.text
    assert_no_store(response)
    assert_no_store(client.get("/portal/release-key/release-key.age"))


def test_the_login_pages_keep_djangos_never_cache() -> None:
    for path in ["/portal/login/", "/notary/login/", "/admin/login/"]:
        response = Client().get(path)
        assert response.status_code == 200, path
        assert "no-store" in response["Cache-Control"], path
        assert "private" in response["Cache-Control"], path
        assert "Pragma" not in response, "anonymous: the middleware adds nothing"


def test_an_anonymous_public_page_is_left_cacheable(db) -> None:
    response = Client().get("/api/schema/")
    assert response.status_code == 200
    assert "Cache-Control" not in response
    assert "Pragma" not in response


# The rule itself, on responses no view of the project makes yet.


def through_middleware(response: HttpResponse, *, user: Any) -> HttpResponse:
    request = RequestFactory().get("/anything/")
    request.user = user

    def view(_: HttpRequest) -> HttpResponse:
        return response

    return NoStoreMiddleware(view)(request)  # type: ignore[return-value]


def test_an_anonymous_attachment_gets_no_store() -> None:
    response = HttpResponse(b"data")
    response["Content-Disposition"] = 'attachment; filename="x.bin"'
    response["Cache-Control"] = "public, max-age=3600"
    done = through_middleware(response, user=AnonymousUser())
    assert done["Cache-Control"] == "no-store"
    assert done["Pragma"] == "no-cache"


def test_a_header_that_already_says_no_store_is_kept(subscriber) -> None:
    response = HttpResponse(b"page")
    response["Cache-Control"] = "max-age=0, no-cache, no-store, must-revalidate, private"
    done = through_middleware(response, user=subscriber)
    assert done["Cache-Control"] == "max-age=0, no-cache, no-store, must-revalidate, private"
    assert done["Pragma"] == "no-cache"


def test_a_weaker_header_on_a_signed_in_page_is_replaced(subscriber) -> None:
    response = HttpResponse(b"page")
    response["Cache-Control"] = "public, max-age=600"
    assert through_middleware(response, user=subscriber)["Cache-Control"] == "no-store"


def test_an_inline_anonymous_response_is_left_alone() -> None:
    response = HttpResponse(b"page")
    response["Content-Disposition"] = "inline"
    done = through_middleware(response, user=AnonymousUser())
    assert "Cache-Control" not in done
    assert "Pragma" not in done
