"""The repository stands alone: a plain clone (what ``actions/checkout`` gives) has everything the
program, the tests and the docs refer to."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
THIS = Path(__file__).resolve()


def tracked_text_files() -> list[Path]:
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=False)
    if listed.returncode == 0 and listed.stdout:
        names = [n for n in listed.stdout.decode().split("\0") if n]
    else:  # an exported tree without .git
        names = [str(p.relative_to(ROOT)) for p in ROOT.rglob("*") if p.is_file() and "venv" not in p.parts]
    files = []
    for name in names:
        path = ROOT / name
        if path.resolve() == THIS or not path.is_file() or path.suffix in {".json", ".png"}:
            continue
        files.append(path)
    return files


OUTSIDE = re.compile(r"\.\./shared|/work/shared|DESIGN\.md|STYLE\.md")


def test_nothing_refers_to_documents_outside_the_repository() -> None:
    offenders = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for path in tracked_text_files()
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1)
        if OUTSIDE.search(line)
    ]
    assert not offenders, "refers outside the repository:\n" + "\n".join(offenders)


def test_docs_cited_by_comments_exist() -> None:
    """Every ``docs/<file>.md`` a file mentions is in the repository."""
    cited = {
        match
        for path in tracked_text_files()
        for match in re.findall(r"docs/([A-Za-z0-9_.-]+\.md)", path.read_text(errors="replace"))
    }
    missing = sorted(name for name in cited if not (ROOT / "docs" / name).is_file())
    assert not missing, f"cited but missing from docs/: {missing}"


#: Folders of files copied from elsewhere: each file is named, with its source and licence, in a
#: README.md beside it or in a folder above it (up to the tree's top).
VENDORED_TREES = (ROOT / "tests" / "vendor", ROOT / "tests" / "fixtures")


def vendored_note_problems(tree: Path) -> list[str]:
    """Files under ``tree`` whose nearest README.md does not name them or state a licence."""
    problems = []
    for vendored in sorted(tree.rglob("*")):
        if vendored.is_dir() or vendored.name == "README.md" or "__pycache__" in vendored.parts:
            continue
        folder = vendored.parent
        while not (folder / "README.md").is_file() and folder != tree:
            folder = folder.parent
        note = folder / "README.md"
        where = vendored.relative_to(tree.parent)
        if not note.is_file():
            problems.append(f"{where}: no README.md beside it noting its source and licence")
            continue
        text = note.read_text()
        if f"`{vendored.name}`" not in text:
            problems.append(f"{where}: not named in {note.relative_to(tree.parent)}")
        elif not re.search(r"\blicen[cs]e\b", text, re.IGNORECASE):
            problems.append(f"{where}: {note.relative_to(tree.parent)} states no licence")
    return problems


def test_vendored_files_note_their_source_and_licence() -> None:
    problems = [problem for tree in VENDORED_TREES for problem in vendored_note_problems(tree)]
    assert not problems, "\n".join(problems)
    vendor = (ROOT / "tests" / "vendor" / "README.md").read_text()
    assert "Apache-2.0" in vendor and "pulumi/pulumi" in vendor
    arm = (ROOT / "tests" / "fixtures" / "arm" / "README.md").read_text()
    assert "MIT" in arm and "Azure/azure-rest-api-specs" in arm


def test_the_vendored_note_check_finds_an_unnoted_file(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "data.json").write_text("{}")
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "README.md").write_text("`other.json`: from somewhere. Licence: MIT\n")
    (tmp_path / "b" / "spec.json").write_text("{}")
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "README.md").write_text("`x.json`: from somewhere\n")
    (tmp_path / "c" / "x.json").write_text("{}")
    assert vendored_note_problems(tmp_path) == [
        f"{tmp_path.name}/a/data.json: no README.md beside it noting its source and licence",
        f"{tmp_path.name}/b/spec.json: not named in {tmp_path.name}/b/README.md",
        f"{tmp_path.name}/c/x.json: {tmp_path.name}/c/README.md states no licence",
    ]


#: A path built from the repository root to one of its stack files (``Pulumi.<name>.yaml``, a
#: literal name or an f-string): the root's stacks are the adopter's, not test data.
ROOT_STACK_FILE = re.compile(r"""ROOT\s*/\s*f?["']Pulumi\.[^"'/]+\.yaml["']""")


def test_no_test_reads_a_stack_file_at_the_repository_root() -> None:
    """The example ``Pulumi.dev.yaml`` and the real sites at the root belong to the adopter, who
    may edit or delete them: tests read their own stacks (tests/fixture_stacks.py, tests/stacks/).
    ``Pulumi.yaml``, the project file, is the program's and may be read. (Checks that hold for any
    stack, such as "no stack file holds a credential", may go over every root stack with a glob.)
    The one exception is ``tests.fixture_stacks.example_stack()``: the example, while it is listed
    as one, for the tests of the example itself and of the docs' commands (they skip otherwise)."""
    assert ROOT_STACK_FILE.search('stack = yaml.safe_load((ROOT / "Pulumi.dev.yaml").read_text())')
    assert ROOT_STACK_FILE.search('REPO_ROOT / f"Pulumi.{stack}.yaml"')
    assert not ROOT_STACK_FILE.search('shutil.copy(ROOT / "Pulumi.yaml", tmp_path / "Pulumi.yaml")')
    offenders = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for path in sorted((ROOT / "tests").rglob("*.py"))
        if path.resolve() not in (THIS, ROOT / "tests" / "fixture_stacks.py")
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1)
        if ROOT_STACK_FILE.search(line)
    ]
    assert not offenders, (
        "reads the adopter's stack file at the repository root; use tests.fixture_stacks.stack_file() "
        "(tests/stacks/) instead:\n" + "\n".join(offenders)
    )
