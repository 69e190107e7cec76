"""blending.atomic: files and folders appear complete under their name, or not at all."""

from __future__ import annotations

import os

import pytest

from blending.atomic import folder_written_atomically, publish_folder, write_text_atomic


def test_a_file_is_replaced_whole_with_the_umask_permissions_and_no_leftovers(tmp_path):
    target = tmp_path / "summary.json"
    target.write_text("old")
    old_umask = os.umask(0o022)
    try:
        write_text_atomic(target, '{"status": "done"}')
    finally:
        os.umask(old_umask)
    assert target.read_text() == '{"status": "done"}'
    assert target.stat().st_mode & 0o777 == 0o644  # not tempfile's 0600: others on the cluster read results
    assert os.listdir(tmp_path) == ["summary.json"]


def test_a_folder_replaces_the_old_one_only_once_complete(tmp_path):
    final = tmp_path / "export"
    final.mkdir()
    (final / "model.safetensors").write_text("old model")
    with pytest.raises(RuntimeError):
        with folder_written_atomically(final) as tmp:
            (tmp / "model.safetensors").write_text("half a new mod")
            raise RuntimeError("killed while writing")
    assert (final / "model.safetensors").read_text() == "old model"
    assert os.listdir(tmp_path) == ["export"]  # the unfinished folder is gone

    with folder_written_atomically(final) as tmp:
        (tmp / "model.safetensors").write_text("new model")
    assert (final / "model.safetensors").read_text() == "new model"
    assert os.listdir(tmp_path) == ["export"]  # the old one, moved aside, is deleted once the new one is in


def test_publishing_into_a_new_name_creates_it(tmp_path):
    tmp = tmp_path / ".step_00000002.partial"
    (tmp / "rng").mkdir(parents=True)
    (tmp / "rng" / "rank_00000.pt").write_bytes(b"state")
    publish_folder(tmp, tmp_path / "step_00000002")
    assert (tmp_path / "step_00000002" / "rng" / "rank_00000.pt").read_bytes() == b"state"
    assert not tmp.exists()
