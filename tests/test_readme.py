"""The README's tour runs as written, and the notebooks it links exist."""
import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
README = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()


def test_tour_runs():
    blocks = re.findall(r"```python\n(.*?)```", README, re.S)
    assert blocks, "the README has no python tour"
    tour = blocks[0]
    assert len(tour.strip().splitlines()) <= 14
    namespace: dict = {}
    exec(compile(tour, "README.md tour", "exec"), namespace)  # noqa: S102 - our own README
    cap = namespace["cap"]
    assert len(cap.frames) > 0
    assert (cap.findings["kind"] == "nonce_reuse").any()


def test_linked_notebooks_exist():
    links = re.findall(r"\((notebooks/[^)]+\.ipynb)\)", README)
    assert sorted(links) == sorted(f"notebooks/{n}" for n in os.listdir(os.path.join(ROOT, "notebooks"))
                                   if n.endswith(".ipynb"))
    missing = [l for l in links if not os.path.exists(os.path.join(ROOT, l))]
    assert not missing, missing
