"""The build recipe (escrow.toml): valid recipes parse; every hostile one is refused
with a RecipeError naming the field."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from vault.build_recipe import (
    DEFAULT_TIME_LIMIT,
    MAX_COMMAND_LENGTH,
    RECIPE_FILE,
    Recipe,
    RecipeError,
    holds_recipe_file,
    parse_recipe,
    parse_version_spec,
)

C_MAKE = """
[build]
command = "make all"
artefacts = ["build/hello", "build/*.o"]
time_limit = 300

[toolchain]
gcc = ">=12"
make = "*"
"""

PYTHON = """
[build]
command = "python3 -m pip wheel --no-index --no-deps --wheel-dir dist ."
artefacts = ["dist/*.whl"]

[toolchain]
python3 = "~=3.11"
"""

NODE = """
[build]
command = "npm ci --offline && npm run build"
artefacts = ["dist/index.js"]
time_limit = 900

[toolchain]
node = "~=20"
npm = ">=9"
"""


def test_the_recipe_file_name() -> None:
    assert RECIPE_FILE == "escrow.toml"


def test_c_make_recipe() -> None:
    recipe = parse_recipe(C_MAKE)
    assert recipe == Recipe(
        command="make all",
        artefacts=("build/hello", "build/*.o"),
        time_limit_seconds=300,
        toolchain={"gcc": ">=12", "make": "*"},
        source="archive",
    )
    assert recipe.as_dict() == {
        "command": "make all",
        "artefacts": ["build/hello", "build/*.o"],
        "time_limit_seconds": 300,
        "toolchain": {"gcc": ">=12", "make": "*"},
        "source": "archive",
    }


def test_python_recipe_takes_the_default_time_limit() -> None:
    recipe = parse_recipe(PYTHON, source="product")
    assert recipe.command.startswith("python3 -m pip wheel")
    assert recipe.artefacts == ("dist/*.whl",)
    assert recipe.time_limit_seconds == DEFAULT_TIME_LIMIT == 600
    assert dict(recipe.toolchain) == {"python3": "~=3.11"}
    assert recipe.source == "product"


def test_node_recipe() -> None:
    recipe = parse_recipe(NODE)
    assert recipe.time_limit_seconds == 900
    assert dict(recipe.toolchain) == {"node": "~=20", "npm": ">=9"}


def test_toolchain_is_optional_and_read_only() -> None:
    recipe = parse_recipe('[build]\ncommand = "sh build.sh"\nartefacts = ["out"]\n')
    assert dict(recipe.toolchain) == {}
    with pytest.raises(TypeError):
        recipe.toolchain["gcc"] = "*"  # type: ignore[index]


def test_duplicate_artefacts_are_kept_once() -> None:
    recipe = parse_recipe('[build]\ncommand = "x"\nartefacts = ["a", "b", "a"]\n')
    assert recipe.artefacts == ("a", "b")


def test_time_limit_up_to_the_setting(settings: Any) -> None:
    settings.ESCROW_VERIFY_MAX_SECONDS = 100
    assert parse_recipe('[build]\ncommand="x"\nartefacts=["a"]\ntime_limit=100\n')
    with pytest.raises(RecipeError, match=r"build\.time_limit: 101 s is above the maximum of 100"):
        parse_recipe('[build]\ncommand="x"\nartefacts=["a"]\ntime_limit=101\n')


def _build(**fields: str) -> str:
    values = {"command": '"make"', "artefacts": '["out"]'} | fields
    body = "".join(f"{key} = {value}\n" for key, value in values.items() if value != "<omit>")
    return "[build]\n" + body


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("this is not = = toml", r"escrow\.toml: not valid TOML"),
        ("[build\ncommand='x'", r"escrow\.toml: not valid TOML"),
        ("", r"\[build\]: missing section"),
        ("[toolchain]\ngcc='*'\n", r"\[build\]: missing section"),
        ("build = 3\n", r"\[build\]: must be a table"),
        ("[build]\ncommand='x'\nartefacts=['a']\n[deploy]\nx=1\n", r"deploy: unknown section"),
        (_build(shell='"bash"'), r"build\.shell: unknown key"),
        (_build(command="<omit>"), r"build\.command: missing"),
        (_build(command="42"), r"build\.command: must be a string, not an integer"),
        (_build(command='["make"]'), r"build\.command: must be a string, not an array"),
        (_build(command='""'), r"build\.command: is empty"),
        (_build(command='"   "'), r"build\.command: is empty"),
        (
            _build(command='"' + "x" * (MAX_COMMAND_LENGTH + 1) + '"'),
            rf"build\.command: longer than {MAX_COMMAND_LENGTH} characters",
        ),
        (_build(command='"make\\u0000"'), r"build\.command: contains a NUL"),
        (_build(artefacts="<omit>"), r"build\.artefacts: missing"),
        (_build(artefacts="[]"), r"build\.artefacts: is empty"),
        (_build(artefacts='"out"'), r"build\.artefacts: must be an array of strings, not a str"),
        (_build(artefacts="[1]"), r"build\.artefacts\[0\]: must be a string, not an integer"),
        (_build(artefacts='["ok", ""]'), r"build\.artefacts\[1\]: is empty"),
        (_build(artefacts='["/etc/passwd"]'), r"build\.artefacts\[0\]: '/etc/passwd' is absolute"),
        (_build(artefacts='["C:/x.exe"]'), r"build\.artefacts\[0\]: 'C:/x\.exe' is absolute"),
        (_build(artefacts='["../../root/x"]'), r"build\.artefacts\[0\]: .* contains '\.\.'"),
        (_build(artefacts='["build/../../x"]'), r"build\.artefacts\[0\]: .* contains '\.\.'"),
        (_build(artefacts='["a\\nb"]'), r"build\.artefacts\[0\]: contains a control character"),
        (_build(time_limit="0"), r"build\.time_limit: must be at least 1 second, not 0"),
        (_build(time_limit="-5"), r"build\.time_limit: must be at least 1 second, not -5"),
        (_build(time_limit="99999999"), r"build\.time_limit: 99999999 s is above the maximum"),
        (_build(time_limit='"600"'), r"build\.time_limit: must be an integer .*, not a string"),
        (_build(time_limit="1.5"), r"build\.time_limit: must be an integer .*, not a number"),
        (_build(time_limit="true"), r"build\.time_limit: must be an integer .*, not a boolean"),
        (_build() + "[toolchain]\ngcc = 12\n", r"toolchain\.gcc: version spec must be a string"),
        (_build() + "[toolchain]\ngcc = 'new'\n", r"toolchain\.gcc: version spec 'new'"),
        (_build() + "[toolchain]\ngcc = '>=12; rm -rf /'\n", r"toolchain\.gcc: version spec"),
        (_build() + "[toolchain]\ngcc = '=>12'\n", r"toolchain\.gcc: version spec '=>12'"),
        (_build() + "[toolchain]\ngcc = ''\n", r"toolchain\.gcc: version spec ''"),
        (_build() + "[toolchain]\n'/bin/sh' = '*'\n", r"toolchain\./bin/sh: not a program name"),
        (_build() + "[toolchain]\n'gcc -x' = '*'\n", r"toolchain\.gcc -x: not a program name"),
        (_build() + "toolchain = ['gcc']\n", r"build\.toolchain: unknown key"),
        ("toolchain = 'gcc'\n" + _build(), r"\[toolchain\]: must be a table, not a string"),
    ],
)
def test_hostile_recipes_are_refused_naming_the_field(text: str, message: str) -> None:
    with pytest.raises(RecipeError, match=message):
        parse_recipe(text)


def test_recipe_error_is_a_value_error() -> None:
    assert issubclass(RecipeError, ValueError)


def test_a_huge_recipe_is_refused() -> None:
    text = _build() + "# " + "x" * 70_000 + "\n"
    with pytest.raises(RecipeError, match=r"escrow\.toml: larger than 64 KiB"):
        parse_recipe(text)


def test_too_many_artefacts_are_refused() -> None:
    many = "[" + ", ".join(f'"f{i}"' for i in range(101)) + "]"
    with pytest.raises(RecipeError, match=r"build\.artefacts: more than 100 entries"):
        parse_recipe(_build(artefacts=many))


def test_unknown_source_is_refused() -> None:
    with pytest.raises(RecipeError, match=r"source: must be one of archive, product"):
        parse_recipe(C_MAKE, source="email")


@pytest.mark.parametrize(
    ("spec", "parsed"),
    [
        ("*", None),
        (" * ", None),
        (">=12", (">=", (12,))),
        ("==3.11", ("==", (3, 11))),
        ("~=20", ("~=", (20,))),
        ("< 4.0.1", ("<", (4, 0, 1))),
    ],
)
def test_version_specs(spec: str, parsed: tuple[str, tuple[int, ...]] | None) -> None:
    assert parse_version_spec(spec) == parsed


def test_every_example_in_the_documentation_parses() -> None:
    document = (Path(__file__).resolve().parents[2] / "docs" / "verification.md").read_text()
    examples = re.findall(r"```toml\n(.*?)```", document, flags=re.DOTALL)
    assert len(examples) == 4
    for example in examples:
        assert parse_recipe(example).artefacts


@pytest.mark.parametrize(
    ("names", "expected"),
    [
        (["escrow.toml"], True),
        (["./escrow.toml"], True),
        (["ledger-1.0/escrow.toml", "ledger-1.0/src/main.c"], True),
        (["ledger-1.0\\escrow.toml"], True),  # a Windows separator in a zip
        (["ledger-1.0/./escrow.toml"], True),
        (["escrow.toml/"], True),  # only names are looked at: the build judges what it is
        (["ledger-1.0/src/escrow.toml"], False),  # too deep to be at a source root
        (["escrow.toml.bak", "notescrow.toml", "ESCROW.TOML"], False),
        (["", ".", "./"], False),
        ([], False),
    ],
)
def test_holds_recipe_file_answers_from_names_where_a_source_root_can_be(
    names: list[str], expected: bool
) -> None:
    assert holds_recipe_file(names) is expected
    assert holds_recipe_file(iter(names)) is expected  # any iterable, read once
