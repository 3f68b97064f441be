"""Each chapter maps the lecture's pseudo-code onto the blocks of its agent's train(): every
block (`# 1.`, `# 2.`, ...) and every function a map names must still be in the source it shows."""
import inspect
import re
from pathlib import Path

import nbformat
import pytest

from course_lib.agents import alphago, alphazero, impala, muzero, ppo, sac
from course_lib.vision import vit

ROOT = Path(__file__).resolve().parents[1]
SHOWN = {"01_alphago_alphazero": [alphago.train, alphazero.train], "02_muzero": [muzero.train],
         "03_sac": [sac.train], "04_ppo": [ppo.train], "05_impala_vtrace": [impala.train, impala.UnrollActor],
         "06_attention_vit": [vit.embed_patches, vit.ViT.forward]}


@pytest.mark.parametrize("stem", sorted(SHOWN))
def test_every_block_a_loop_map_names_is_in_the_loop(stem):
    nb = nbformat.read(ROOT / "notebooks" / f"{stem}.ipynb", as_version=4)
    code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    assert "show_source(" in code, f"{stem} shows no training loop"
    source = "\n".join(inspect.getsource(obj) for obj in SHOWN[stem])
    maps = [c.source for c in nb.cells if c.cell_type == "markdown"
            and re.search(r"^\| [^|]+ \| in (`train`|the code) \|$", c.source, re.M)]
    assert maps, f"{stem} has no table mapping the lecture's pseudo-code onto train"
    blocks = {m for text in maps for m in re.findall(r"`(# \d(?:-\d)?\.(?: [A-Z][a-z]+)?)`", text)}
    assert blocks, f"{stem}'s map names no block of train"
    for block in blocks:
        assert block in source, f"{stem}'s loop map names the block {block!r}, which its train no longer has"
