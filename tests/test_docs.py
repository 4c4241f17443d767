"""The README and docs/ hold together: the README stays short enough to finish, every link between the
guides reaches a file and a heading of this repository, and nothing in the tree sends the reader to a
document the repository does not have (a note on someone's machine, a shared folder)."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GUIDES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SKIP_DIRS = {".git", ".venv", "var", "node_modules", "__pycache__", ".ruff_cache", ".pytest_cache"}
TEXT_SUFFIXES = {".py", ".md", ".html", ".js", ".css", ".yml", ".yaml", ".toml", ".conf", ".txt", ".example"}
README_MAX_LINES = 200


def heading_anchor(heading: str) -> str:
    """The anchor GitHub gives a Markdown heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def repository_text_files():
    for path in ROOT.rglob("*"):
        if SKIP_DIRS & set(path.relative_to(ROOT).parts) or not path.is_file():
            continue
        if path.suffix in TEXT_SUFFIXES or path.name in {"Makefile", "Dockerfile", "run"}:
            yield path


def test_the_readme_is_short_enough_to_finish():
    lines = (ROOT / "README.md").read_text().splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines: move the detail to docs/"


def test_links_between_the_guides_reach_a_file_and_a_heading():
    broken = []
    for guide in GUIDES:
        for target in re.findall(r"\]\(([^)\s]+)\)", guide.read_text()):
            if re.match(r"[a-z]+:", target):
                continue  # a URL of another site (none today: the guides are read offline)
            path, _, anchor = target.partition("#")
            linked = (guide.parent / path).resolve() if path else guide
            if not linked.is_relative_to(ROOT) or not linked.exists():
                broken.append(f"{guide.name}: {target} (no such file in the repository)")
            elif anchor and linked.suffix == ".md":
                headings = re.findall(r"^#+ (.+)$", linked.read_text(), re.M)
                if anchor not in {heading_anchor(h) for h in headings}:
                    broken.append(f"{guide.name}: {target} (no such heading)")
    assert not broken, broken


def test_every_document_the_tree_mentions_is_in_the_repository():
    names = {p.name for p in ROOT.rglob("*.md") if not SKIP_DIRS & set(p.relative_to(ROOT).parts)}
    missing = []
    for path in repository_text_files():
        for mention in re.findall(r"[\w./-]*\w\.md\b", path.read_text(errors="replace")):
            if "../" in mention or Path(mention).name not in names:
                missing.append(f"{path.relative_to(ROOT)}: {mention}")
    assert not missing, f"point to a file of this repository (docs/) instead: {missing}"
