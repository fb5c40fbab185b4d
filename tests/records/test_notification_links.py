"""Links in e-mails: ESCROW_PUBLIC_URL when it is set, otherwise the address the
request being served came in on (so `make run` on any port mails working links),
otherwise 127.0.0.1:8000 in a worker. A password reset never takes the request's
Host header, and `check --deploy` refuses an empty or plain-http ESCROW_PUBLIC_URL."""

from __future__ import annotations

import re

import pytest
from django.http import HttpRequest, HttpResponse
from django.test import Client, RequestFactory

from config.middleware import RequestOriginMiddleware
from escrow.checks import embedded_defaults_in_production
from records.links import (
    FALLBACK_PUBLIC_URL,
    configured_public_origin,
    public_origin,
    public_url,
    request_origin,
)


def link_view(request: HttpRequest) -> HttpResponse:
    """Stands in for a view whose service mails a link."""
    return HttpResponse(public_url("/portal/claims/7/"))


def served(request: HttpRequest) -> str:
    return RequestOriginMiddleware(link_view)(request).content.decode()


def test_the_configured_address_wins_over_the_request(settings) -> None:
    settings.ESCROW_PUBLIC_URL = "https://escrow.example.com"
    request = RequestFactory().get("/", HTTP_HOST="localhost:8123")
    assert served(request) == "https://escrow.example.com/portal/claims/7/"


def test_without_one_the_link_uses_the_host_and_port_of_the_request(settings) -> None:
    settings.ESCROW_PUBLIC_URL = ""
    request = RequestFactory().get("/", HTTP_HOST="localhost:8123")
    assert served(request) == "http://localhost:8123/portal/claims/7/"
    secure = RequestFactory().get("/", HTTP_HOST="localhost:8443", secure=True)
    assert served(secure) == "https://localhost:8443/portal/claims/7/"


def test_a_host_outside_allowed_hosts_is_never_used(settings) -> None:
    settings.ESCROW_PUBLIC_URL = ""
    settings.ALLOWED_HOSTS = ["localhost"]
    request = RequestFactory().get("/", HTTP_HOST="evil.example:80")
    assert served(request) == f"{FALLBACK_PUBLIC_URL}/portal/claims/7/"


def test_outside_a_request_the_link_falls_back_to_the_local_address(settings) -> None:
    settings.ESCROW_PUBLIC_URL = ""
    assert public_url("/notary/claims/7/") == "http://127.0.0.1:8000/notary/claims/7/"
    # The request's address is forgotten once its response is made.
    served(RequestFactory().get("/", HTTP_HOST="localhost:8123"))
    assert public_url("/notary/") == "http://127.0.0.1:8000/notary/"


def test_a_worker_serving_a_remembered_origin_uses_it_only_inside_the_block(settings) -> None:
    settings.ESCROW_PUBLIC_URL = ""
    with request_origin("http://127.0.0.1:8123/"):
        assert public_origin() == "http://127.0.0.1:8123"
        assert public_url("portal/") == "http://127.0.0.1:8123/portal/"
        # A link mailed at a stranger's request never takes the request's address.
        assert configured_public_origin() == FALLBACK_PUBLIC_URL
    assert public_origin() == FALLBACK_PUBLIC_URL
    settings.ESCROW_PUBLIC_URL = "https://escrow.example.com"
    assert configured_public_origin() == "https://escrow.example.com"


def test_a_trailing_slash_in_the_setting_gives_no_double_slash(settings) -> None:
    settings.ESCROW_PUBLIC_URL = "https://escrow.example.com/"
    assert public_url("/portal/") == "https://escrow.example.com/portal/"


@pytest.mark.parametrize("address", ["https://evil.example/x", "//evil.example/x"])
def test_public_url_takes_a_path_not_an_address(address) -> None:
    with pytest.raises(ValueError, match="takes a path on this site"):
        public_url(address)


def test_the_middleware_is_installed_so_real_pages_use_it(settings) -> None:
    assert "config.middleware.RequestOriginMiddleware" in settings.MIDDLEWARE


RESET_LINK = re.compile(r"(https?://[^/\s]+)/portal/password/reset/")


def test_a_password_reset_link_never_follows_the_host_header(
    settings, subscriber, mailoutbox
) -> None:
    # The host is allowed (a real server's own name), but the reset is asked for by
    # whoever types the address: its link must not depend on the request.
    settings.ESCROW_PUBLIC_URL = ""
    settings.ALLOWED_HOSTS = ["localhost", "127.0.0.1"]
    Client(HTTP_HOST="localhost:8123").post("/portal/password/reset/", {"email": subscriber.email})
    found = RESET_LINK.search(mailoutbox[0].body)
    assert found is not None, mailoutbox[0].body
    assert found.group(1) == FALLBACK_PUBLIC_URL


def error_ids(settings_value: str, settings) -> set[str]:
    settings.ESCROW_PUBLIC_URL = settings_value
    return {error.id for error in embedded_defaults_in_production(None)}


@pytest.mark.parametrize("value", ["", "http://escrow.example.com"])
def test_the_deploy_check_refuses_an_empty_or_plain_http_public_url(settings, value) -> None:
    assert "escrow.E011" in error_ids(value, settings)


def test_the_deploy_check_accepts_an_https_public_url(settings) -> None:
    assert "escrow.E011" not in error_ids("https://escrow.example.com", settings)
