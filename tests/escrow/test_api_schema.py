"""The API's OpenAPI schema, and the web worker that never loads what only the schema
or an S3 site needs (escrow.api.openapi, vault.site_clients).

The worker must stay light enough to take a 4 GiB deposit within 100 MiB: drf-spectacular's
generator (with django.test, jinja2, unittest) and boto3 cost it about 13 MiB, and the
embedded default needs neither to serve the API."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from django.test import Client

ROOT = Path(__file__).resolve().parents[2]

#: Modules a web worker of the embedded default must not load to answer an API request.
NOT_IN_THE_WORKER = (
    "boto3",
    "botocore",
    "vault.sites_s3",
    "drf_spectacular.openapi",
    "drf_spectacular.plumbing",
    "drf_spectacular.views",
    "escrow.api.schema",
    "django.test",
)

#: A fresh interpreter loads the app as gunicorn does (config.wsgi), answers one API
#: request through it, and prints its status and every module it has loaded.
_SERVE_ONE_REQUEST = """
import io, json, sys
from config.wsgi import application
statuses = []
environ = {
    "REQUEST_METHOD": "GET", "PATH_INFO": "/api/v1/deposits/1", "QUERY_STRING": "",
    "SERVER_NAME": "localhost", "SERVER_PORT": "80", "SERVER_PROTOCOL": "HTTP/1.1",
    "REMOTE_ADDR": "127.0.0.1", "wsgi.input": io.BytesIO(), "wsgi.url_scheme": "http",
    "wsgi.errors": sys.stderr,
}
b"".join(application(environ, lambda status, headers, exc_info=None: statuses.append(status)))
print(json.dumps({"status": statuses[0], "modules": sorted(sys.modules)}))
"""


def test_the_web_worker_answers_the_api_without_the_schema_generator_or_boto3(tmp_path) -> None:
    clean = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("DJANGO_", "ESCROW_", "DATABASE_", "CELERY_"))
    }
    result = subprocess.run(
        [sys.executable, "-c", _SERVE_ONE_REQUEST],
        cwd=ROOT,
        env=clean | {"ESCROW_VAR_DIR": str(tmp_path), "DJANGO_ALLOWED_HOSTS": "localhost"},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    served = json.loads(result.stdout.splitlines()[-1])
    assert served["status"].startswith("401"), served["status"]
    loaded = set(served["modules"])
    assert "rest_framework.views" in loaded, "the request went through DRF"
    assert [name for name in NOT_IN_THE_WORKER if name in loaded] == []


def test_the_schema_describes_both_operations_with_the_deposit_token(db) -> None:
    response = Client().get("/api/schema/?format=json")
    assert response.status_code == 200
    schema = json.loads(response.content)
    assert schema["components"]["securitySchemes"]["depositToken"]["scheme"] == "bearer"
    operations = {
        operation["operationId"]: operation
        for path in schema["paths"].values()
        for operation in path.values()
    }
    assert sorted(operations) == [
        "build_recipe_get",
        "build_recipe_put",
        "deposit_get",
        "deposit_put",
    ]
    for operation in operations.values():
        assert operation["security"] == [{"depositToken": []}]
        assert operation["tags"] == ["v1"]
    assert "X-Archive-SHA256" in {p["name"] for p in operations["deposit_put"]["parameters"]}
    assert set(operations["deposit_put"]["responses"]) >= {"200", "202", "409", "503", "507"}
    assert "application/toml" in operations["build_recipe_put"]["requestBody"]["content"]
    assert set(operations["build_recipe_put"]["responses"]) >= {"200", "400", "403"}


def test_manage_spectacular_writes_the_schema_the_door_serves(db, tmp_path) -> None:
    served = json.loads(Client().get("/api/schema/?format=json").content)
    written = tmp_path / "schema.json"
    command = ["manage.py", "spectacular", "--format", "openapi-json", "--file", str(written)]
    subprocess.run(
        [sys.executable, *command],
        cwd=ROOT,
        env={**os.environ, "ESCROW_VAR_DIR": str(tmp_path)},
        capture_output=True,
        timeout=120,
        check=True,
    )
    assert json.loads(written.read_text()) == served
