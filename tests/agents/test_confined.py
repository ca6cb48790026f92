"""The file tools' confinement holds against a racing swap of a folder for a symbolic
link (issue 19, item 7): every component is opened relative to its parent with
O_NOFOLLOW, so nothing outside the folder is ever read or written."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from wiz_jupyter.agents import confined


def test_paths_are_checked_before_anything_is_opened(tmp_path):
    for bad in ["../x", "a/../../x", "/etc/passwd", "~/x", "", "a\x00b"]:
        with pytest.raises(confined.OutsideFolder):
            confined.parts(bad)
    assert confined.parts("a/./b/../c.txt") == ["a", "c.txt"]


def test_links_are_not_followed_even_inside(tmp_path):
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "f.txt").write_text("hi")
    os.symlink(tmp_path / "real", tmp_path / "alias")
    assert confined.read_text(tmp_path, "real/f.txt") == "hi"
    with pytest.raises(confined.OutsideFolder, match="symbolic link"):
        confined.read_text(tmp_path, "alias/f.txt")
    with pytest.raises(confined.OutsideFolder):
        confined.write_text(tmp_path, "alias/g.txt", "x")
    assert confined.list_dir(tmp_path) == ["alias", "real/"]  # a link is listed, not entered
    with pytest.raises(NotADirectoryError):
        confined.read_text(tmp_path, "real/f.txt/x")


SWAP = """
import os, sys, time
folder, outside = sys.argv[1], sys.argv[2]
sub = os.path.join(folder, "sub")
end = time.time() + 60
while time.time() < end and not os.path.exists(os.path.join(folder, "stop")):
    try:  # sub/ is a real folder one moment, a link out the next
        os.mkdir(sub)
        with open(os.path.join(sub, "f.txt"), "w") as f:
            f.write("inside")
        for name in os.listdir(sub):
            os.unlink(os.path.join(sub, name))
        os.rmdir(sub)
        os.symlink(outside, sub)
        os.unlink(sub)
    except OSError:
        pass
"""


@pytest.mark.timeout(120)
def test_a_racing_symlink_swap_never_reaches_outside(tmp_path):
    """A second process swaps sub/ between a folder and a link out while this one reads and
    writes sub/...: the swap lands often, yet nothing outside is ever read or written."""
    folder, outside = tmp_path / "desk", tmp_path / "outside"
    folder.mkdir()
    outside.mkdir()
    (outside / "f.txt").write_text("SECRET")
    racer = subprocess.Popen([sys.executable, "-c", SWAP, str(folder), str(outside)])
    read = refused = 0
    try:
        for i in range(3000):
            try:
                text = confined.read_text(folder, "sub/f.txt")
                assert text != "SECRET", "read through the link"
                read += 1
            except OSError:
                refused += 1
            try:
                confined.write_text(folder, "sub/w.txt", str(i))
            except OSError:
                pass
    finally:
        (folder / "stop").touch()
        racer.wait(30)
    assert not (outside / "w.txt").exists(), "wrote through the link"
    assert sorted(p.name for p in outside.iterdir()) == ["f.txt"]
    assert (outside / "f.txt").read_text() == "SECRET"
    assert read + refused == 3000 and refused > 0  # the race was on
