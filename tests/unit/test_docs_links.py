"""README and docs/ point at things that exist: relative links, their #anchors, and the README sections configs cite."""

import re
from pathlib import Path

import pytest

from tests.conftest import REPO

PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)\s]+)\)")


def anchors(page: Path) -> set[str]:
    """GitHub's heading slugs: lower case, punctuation dropped (letters, digits, _ and - kept), spaces to hyphens."""
    headings = re.findall(r"^#+\s+(.+?)\s*$", page.read_text(), flags=re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-") for heading in headings}


def relative_links(page: Path) -> list[str]:
    return [target for target in LINK.findall(page.read_text()) if not re.match(r"[a-z]+:", target)]


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.name)
def test_relative_links_and_their_anchors_resolve(page: Path) -> None:
    broken = []
    for target in relative_links(page):
        path, _, anchor = target.partition("#")
        resolved = (page.parent / path).resolve() if path else page
        if not resolved.exists() or (anchor and resolved.suffix == ".md" and anchor not in anchors(resolved)):
            broken.append(target)
    assert not broken, f"{page.name} links to missing files or headings: {broken}"


def test_the_slugs_follow_githubs_rule() -> None:
    assert "results-fashion-mnist-measured-on-2-cpu-cores" in anchors(REPO / "README.md")
    assert "the-β-vaes-prior" in anchors(REPO / "docs" / "fashion-mnist-study.md")


def test_readme_sections_cited_by_configs_exist() -> None:
    readme = (REPO / "README.md").read_text()
    cited = {(config.name, title) for config in (REPO / "conf").rglob("*.yaml")
             for title in re.findall(r'README "([^"]+)"', config.read_text())}
    assert cited, "no config cites a README section: this test has nothing to check"
    missing = [(name, title) for name, title in cited if title not in readme]
    assert not missing, f"configs cite README sections that are not there: {missing}"
