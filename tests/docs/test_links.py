"""The docs a newcomer navigates: every relative link of README.md and docs/ leads to a file of the
repository, and every #anchor to a heading of the page it names; the README stays a short front
page that gives the test command CI runs, and docs/README.md indexes every page."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
README = ROOT / "README.md"
README_MAX_LINES = 250

LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
CODE_SPAN = re.compile(r"`+[^`]*`+")
EXTERNAL = re.compile(r"^[a-z][a-z0-9+.-]*:", re.IGNORECASE)  # https:, mailto:, ...


def pages() -> list[Path]:
    return [README, *sorted(DOCS.rglob("*.md"))]


def prose(text: str) -> Iterator[tuple[int, str]]:
    """(line number, line) outside fenced code blocks."""
    fence = ""
    for number, line in enumerate(text.splitlines(), start=1):
        marker = re.match(r"^\s*(```+|~~~+)", line)
        if marker:
            if not fence:
                fence = marker.group(1)
            elif marker.group(1).startswith(fence):
                fence = ""
            continue
        if not fence:
            yield number, line


def anchors(page: Path) -> set[str]:
    """The anchors GitHub gives the page's headings: lower case, punctuation dropped except '-'
    and '_', spaces turned into '-'; a repeated heading gets -1, -2, ..."""
    found: set[str] = set()
    for _, line in prose(page.read_text(encoding="utf-8")):
        heading = re.match(r"^#{1,6}\s+(.+?)\s*#*\s*$", line)
        if not heading:
            continue
        slug = re.sub(r"[^\w\- ]", "", heading.group(1).lower()).replace(" ", "-")
        candidate, n = slug, 0
        while candidate in found:
            n += 1
            candidate = f"{slug}-{n}"
        found.add(candidate)
    return found


def links(page: Path) -> Iterator[tuple[int, str]]:
    """(line number, target) of every Markdown link outside code."""
    for number, line in prose(page.read_text(encoding="utf-8")):
        for match in LINK.finditer(CODE_SPAN.sub("", line)):
            yield number, match.group(1)


def broken_links(page: Path) -> list[str]:
    problems: list[str] = []
    for number, target in links(page):
        if EXTERNAL.match(target):
            continue
        where = f"{page.relative_to(ROOT)}:{number}: {target}"
        path_part, _, anchor = target.partition("#")
        resolved = (page.parent / path_part).resolve() if path_part else page
        if not resolved.is_relative_to(ROOT):
            problems.append(f"{where}: outside the repository")
        elif not resolved.exists():
            problems.append(f"{where}: no such file")
        elif anchor and resolved.suffix == ".md" and anchor not in anchors(resolved):
            problems.append(f"{where}: no heading #{anchor} in {resolved.relative_to(ROOT)}")
    return problems


def test_every_relative_link_and_anchor_resolves() -> None:
    problems = [problem for page in pages() for problem in broken_links(page)]
    assert not problems, "broken links:\n" + "\n".join(problems)


def test_the_readme_is_a_short_front_page_with_the_test_command() -> None:
    text = README.read_text(encoding="utf-8")
    assert len(text.splitlines()) <= README_MAX_LINES, "move details into docs/"
    commands = [line.split("#")[0].strip() for _, line in _fenced(text)]
    assert "./scripts/test" in commands, "CI runs the README's test command: keep it in a block"
    assert "./scripts/run" in commands


def _fenced(text: str) -> Iterator[tuple[int, str]]:
    outside = {number for number, _ in prose(text)}
    for number, line in enumerate(text.splitlines(), start=1):
        if number not in outside:
            yield number, line


def test_the_docs_index_links_every_page() -> None:
    index = DOCS / "README.md"
    linked = {
        (index.parent / target.partition("#")[0]).resolve()
        for _, target in links(index)
        if not EXTERNAL.match(target)
    }
    missing = [
        str(page.relative_to(ROOT)) for page in pages()[1:] if page != index and page not in linked
    ]
    assert not missing, f"docs/README.md does not link: {missing}"


def test_the_check_sees_what_it_is_meant_to_catch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Broken files and anchors are reported; code, external links and repeated headings are
    handled as GitHub does."""
    monkeypatch.setattr(f"{__name__}.ROOT", tmp_path)
    (tmp_path / "other.md").write_text("# Title\n## Same\n## Same\n## A `code`, here_too\n")
    page = tmp_path / "page.md"
    page.write_text(
        "# Page\n"
        "[ok](other.md#same-1) [ok](other.md#a-code-here_too) [ok](#page) [ok](https://x.y/z)\n"
        "[gone](missing.md) [bad anchor](other.md#nope) [self](#absent)\n"
        "`[in code](missing.md)`\n"
        "```\n[in a fence](missing.md)\n# not a heading\n```\n"
        "[up](../outside.md)\n"
    )
    problems = broken_links(page)
    assert [p.split(": ", 1)[1] for p in problems] == [
        "missing.md: no such file",
        "other.md#nope: no heading #nope in other.md",
        "#absent: no heading #absent in page.md",
        "../outside.md: outside the repository",
    ]
    assert "not-a-heading" not in anchors(page)
