"""``python -m deployer.demo --out DIR`` (how models/demo is rebuilt): a folder that is not a bundle is refused,
untouched, before any training or export starts."""

from __future__ import annotations

from deployer.demo import main


def test_out_refuses_a_folder_that_is_not_a_bundle(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("mine")
    assert main(["--out", str(tmp_path)]) == 2
    assert "not empty and not a bundle folder" in capsys.readouterr().err
    assert (tmp_path / "notes.txt").read_text() == "mine"
