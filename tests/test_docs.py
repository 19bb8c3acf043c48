"""README.md and docs/: generated tables match their results, links resolve, every results
folder is cited, and the README covers the whole public API and every command."""
import importlib.util
import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")


def load_updater():
    spec = importlib.util.spec_from_file_location("update_readme", ROOT / "benchmarks" / "update_readme.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_generated_sections_match_their_results(capsys):
    assert load_updater().main(["--check"]) == 0, capsys.readouterr().err


def test_the_check_fails_on_a_stale_section():
    updater = load_updater()
    text = (ROOT / "docs" / "benchmarks.md").read_text()
    stale = re.sub(r"(<!-- generated:compare -->\n)\|", r"\1| edited by hand |", text, count=1)
    assert stale != text
    assert updater.render_page(stale)[1] == ["compare"]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_relative_links_and_images_resolve(page):
    broken = []
    for target in LINK.findall(page.read_text(encoding="utf-8")):
        if re.match(r"^[a-z]+:", target) or target.startswith("#"):
            continue
        path = (page.parent / target.split("#")[0]).resolve()
        if not path.exists():
            broken.append(target)
    assert not broken, f"{page.name}: broken links {broken}"


def test_every_results_folder_is_cited_by_a_page():
    text = "\n".join(p.read_text(encoding="utf-8") for p in PAGES)
    folders = [p.name for p in (ROOT / "benchmarks" / "results").iterdir() if p.is_dir()]
    assert folders
    uncited = [f for f in folders if f"benchmarks/results/{f}" not in text]
    assert not uncited, f"results folders no page cites: {uncited}"


def test_readme_is_short_and_covers_the_api_and_the_commands():
    import specmix
    from specmix.app.cli import COMMANDS
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 300
    assert not [n for n in specmix.__all__ if f"`{n}`" not in text]
    assert not [c for c in COMMANDS if f"specmix {c}`" not in text]


def test_pages_speak_of_the_software_only():
    words = re.compile(r"this session|the issue|issue's|the run before|slower day|probe\)", re.I)
    hits = [(p.name, m.group(0)) for p in PAGES for m in words.finditer(p.read_text(encoding="utf-8"))]
    assert not hits
