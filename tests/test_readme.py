"""The README's usage example runs verbatim."""
import pathlib
import re

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"


def test_readme_usage_block_runs():
    text = README.read_text(encoding="utf-8")
    match = re.search(r"<!-- usage:.*?-->\s*```python\n(.*?)```", text, re.S)
    assert match, "README lost its usage block"
    exec(compile(match.group(1), "README.md", "exec"), {})
