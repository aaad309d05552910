"""Import: a PEFT adapter from elsewhere is checked before Tailor stores or loads it."""

from __future__ import annotations

import io
import json
import pickle
import shutil
import tarfile
import zipfile
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tailor.stages.package.errors import (
    InvalidAdapterError,
    ShapeMismatchError,
    TruncatedFileError,
    UnsafeArchiveError,
    UnsafeFileError,
)
from tailor.stages.package.validate import import_adapter, validate_upload
from tests.adapters.conftest import make_adapter

FILES = ("adapter_model.safetensors", "adapter_config.json")


def _upload_copy(adapter: Path, dest: Path) -> Path:
    """What a team uploads: the PEFT files, without Tailor's manifest."""
    dest.mkdir(parents=True)
    for name in FILES:
        shutil.copyfile(adapter / name, dest / name)
    return dest


def _import(upload: Path, base: Path, tmp_path: Path) -> None:
    import_adapter(
        upload, base, tmp_path / "out", base_model="tiny-base", work_dir=tmp_path / "work"
    )


def test_a_valid_adapter_imports_as_a_clean_version(
    tiny_base: Path, adapter_a: Path, tmp_path: Path
) -> None:
    upload = _upload_copy(adapter_a, tmp_path / "upload")
    (upload / "README.md").write_text("trained on our GPUs")
    manifest = import_adapter(
        upload, tiny_base, tmp_path / "out", base_model="tiny-base", base_revision="r1",
        work_dir=tmp_path / "work",
    )  # fmt: skip
    out = tmp_path / "out"
    assert sorted(p.name for p in out.iterdir()) == sorted([*FILES, "tailor.json"])
    assert manifest.origin == "imported"
    assert json.loads((out / "adapter_config.json").read_text())["base_model_name_or_path"] == (
        "tiny-base"
    )
    assert load_file(out / FILES[0]).keys() == load_file(adapter_a / FILES[0]).keys()


def test_a_tar_archive_with_a_top_folder_imports(
    tiny_base: Path, adapter_a: Path, tmp_path: Path
) -> None:
    archive = tmp_path / "adapter.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for name in FILES:
            tar.add(adapter_a / name, arcname=f"my-adapter/{name}")
    checked = validate_upload(archive, tiny_base, tmp_path / "work")
    assert checked.rank == 4
    assert "transformer.h.1.mlp.c_fc" in checked.modules


def test_a_pickled_bin_adapter_is_refused(tiny_base: Path, adapter_a: Path, tmp_path: Path) -> None:
    upload = tmp_path / "upload"
    upload.mkdir()
    shutil.copyfile(adapter_a / "adapter_config.json", upload / "adapter_config.json")
    torch.save(load_file(adapter_a / FILES[0]), upload / "adapter_model.bin")
    with pytest.raises(UnsafeFileError, match=r"adapter_model\.bin is a pickle-format file"):
        _import(upload, tiny_base, tmp_path)
    assert not (tmp_path / "out").exists()


def test_a_torch_save_named_safetensors_is_refused(
    tiny_base: Path, adapter_a: Path, tmp_path: Path
) -> None:
    upload = _upload_copy(adapter_a, tmp_path / "upload")
    torch.save(load_file(adapter_a / FILES[0]), upload / FILES[0])
    with pytest.raises(UnsafeFileError, match=r"adapter_model\.safetensors is a zip archive"):
        _import(upload, tiny_base, tmp_path)


def test_a_plain_pickle_named_safetensors_is_refused(
    tiny_base: Path, adapter_a: Path, tmp_path: Path
) -> None:
    upload = _upload_copy(adapter_a, tmp_path / "upload")
    (upload / FILES[0]).write_bytes(pickle.dumps({"lora_A": [1.0]}, protocol=4))
    with pytest.raises(UnsafeFileError, match=r"a Python pickle \(protocol 4\)"):
        _import(upload, tiny_base, tmp_path)


def test_a_truncated_safetensors_upload_is_refused(
    tiny_base: Path, adapter_a: Path, tmp_path: Path
) -> None:
    upload = _upload_copy(adapter_a, tmp_path / "upload")
    data = (upload / FILES[0]).read_bytes()
    (upload / FILES[0]).write_bytes(data[: len(data) // 2])
    missing = len(data) - len(data) // 2
    with pytest.raises(TruncatedFileError, match=rf"is truncated: .*\({missing} missing\)"):
        _import(upload, tiny_base, tmp_path)


def test_a_file_cut_inside_its_header_is_refused(
    tiny_base: Path, adapter_a: Path, tmp_path: Path
) -> None:
    upload = _upload_copy(adapter_a, tmp_path / "upload")
    (upload / FILES[0]).write_bytes((adapter_a / FILES[0]).read_bytes()[:100])
    with pytest.raises(TruncatedFileError, match="its header needs"):
        _import(upload, tiny_base, tmp_path)


def test_a_tar_with_a_parent_path_is_refused(tiny_base: Path, tmp_path: Path) -> None:
    archive = tmp_path / "evil.tar"
    with tarfile.open(archive, "w") as tar:
        payload = b"owned"
        info = tarfile.TarInfo("../escaped.txt")
        info.size = len(payload)
        tar.addfile(info, io.BytesIO(payload))
    with pytest.raises(UnsafeArchiveError, match=r"'\.\./escaped\.txt' contains '\.\.'"):
        _import(archive, tiny_base, tmp_path)
    assert not (tmp_path / "escaped.txt").exists()


def test_a_tar_with_a_symlink_is_refused(tiny_base: Path, tmp_path: Path) -> None:
    archive = tmp_path / "links.tar"
    with tarfile.open(archive, "w") as tar:
        info = tarfile.TarInfo("adapter_model.safetensors")
        info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tar.addfile(info)
    with pytest.raises(UnsafeArchiveError, match="is a link to '/etc/passwd'"):
        _import(archive, tiny_base, tmp_path)


def test_a_zip_with_an_absolute_path_is_refused(tiny_base: Path, tmp_path: Path) -> None:
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("/tmp/adapter_config.json", "{}")
    with pytest.raises(UnsafeArchiveError, match="has an absolute path"):
        _import(archive, tiny_base, tmp_path)


def test_an_adapter_of_another_shape_is_refused_with_the_shapes(
    tiny_base: Path, wider_base: Path, tmp_path: Path
) -> None:
    other = make_adapter(wider_base, tmp_path / "wide-adapter", seed=5)
    upload = _upload_copy(other, tmp_path / "upload")
    with pytest.raises(
        ShapeMismatchError,
        match=r"transformer\.h\.0\.attn\.c_attn\.lora_A is \(4, 64\) but must be \(4, 128\)",
    ):
        _import(upload, tiny_base, tmp_path)


def test_a_non_lora_config_is_refused(tiny_base: Path, adapter_a: Path, tmp_path: Path) -> None:
    upload = _upload_copy(adapter_a, tmp_path / "upload")
    config = json.loads((upload / "adapter_config.json").read_text()) | {"peft_type": "IA3"}
    (upload / "adapter_config.json").write_text(json.dumps(config))
    with pytest.raises(InvalidAdapterError, match="peft_type 'IA3'; only LoRA"):
        _import(upload, tiny_base, tmp_path)
