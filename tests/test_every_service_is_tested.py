"""Every public service function is called by name in at least one test.

Services are the only way state changes (see docs/architecture.md), so a
service no test calls is behaviour nobody has checked. This walks every
service module of every app and looks for a call of each public function in
the test sources."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
from pathlib import Path

TESTS = Path(__file__).resolve().parent
SERVICE_MODULES = [
    "billing.services",
    "billing.invoicing",
    "billing.payments",
    "billing.documents",
    "escrow.certificates",
    "escrow.backups.service",
    "escrow.links",
    "records.links",
    "records.pdf",
    "notary_portal.services",
    "transparency.services",
    "verification.services",
]
SERVICE_PACKAGES = ["records.services", "escrow.services"]


def _service_modules() -> list[str]:
    names = list(SERVICE_MODULES)
    for package_name in SERVICE_PACKAGES:
        package = importlib.import_module(package_name)
        names += [f"{package_name}.{m.name}" for m in pkgutil.iter_modules(package.__path__)]
    return names


def _public_functions(module_name: str) -> list[str]:
    module = importlib.import_module(module_name)
    return [
        name
        for name, value in vars(module).items()
        if inspect.isfunction(value)
        and value.__module__ == module_name
        and not name.startswith("_")
    ]


def _test_sources() -> str:
    return "\n".join(
        path.read_text() for path in TESTS.rglob("*.py") if path.name != Path(__file__).name
    )


def test_every_public_service_is_called_in_a_test() -> None:
    sources = _test_sources()
    untested = [
        f"{module}.{name}"
        for module in _service_modules()
        for name in _public_functions(module)
        if not re.search(rf"\b{re.escape(name)}\(", sources)
    ]
    assert untested == [], "services no test calls by name: " + ", ".join(untested)


def test_the_walk_finds_the_services_it_is_meant_to_check() -> None:
    found = {name for module in _service_modules() for name in _public_functions(module)}
    # A handful of well-known services: if these vanish, the walk above proves nothing.
    assert {"deposit_receive", "claim_approve", "invoice_issue", "audit_record"} <= found
