"""The bytes checked are the bytes loaded: a private copy made before the checks, read by the
checks and loaded by the worker (issue 11, "the worker loads exactly the scanned bytes")."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from _hostile import external_model
from mlfit.errors import ModelError
from mlfit.formats import ModelFormat
from mlfit.formats.registry import get
from mlfit.safety.snapshot import LINK_THRESHOLD, private_copy


def test_a_file_is_copied_read_only_and_removed_after(tmp_path: Path, tiny_model: Path) -> None:
    with private_copy(tiny_model, get(ModelFormat.ONNX).copy_policy) as copy:
        assert copy != tiny_model and copy.read_bytes() == tiny_model.read_bytes()
        assert os.stat(copy).st_ino != os.stat(tiny_model).st_ino  # a copy, not a link
        assert os.stat(copy).st_mode & 0o777 == 0o400
        assert os.stat(copy.parent).st_mode & 0o777 == 0o700
    assert not copy.exists() and not copy.parent.exists()


def test_onnx_external_data_travels_with_the_copy(tmp_path: Path) -> None:
    model = external_model(tmp_path / "m", "data/w.bin", elements=16)
    (tmp_path / "m" / "data").mkdir()
    (tmp_path / "m" / "data" / "w.bin").write_bytes(b"\0" * 64)
    (tmp_path / "m" / "unrelated.txt").write_text("not copied")
    with private_copy(model, get(ModelFormat.ONNX).copy_policy) as copy:
        assert (copy.parent / "data" / "w.bin").read_bytes() == b"\0" * 64
        assert not (copy.parent / "unrelated.txt").exists()


def test_big_data_is_hard_linked_and_graph_files_copied(tmp_path: Path) -> None:
    folder = tmp_path / "sm"
    (folder / "variables").mkdir(parents=True)
    (folder / "saved_model.pb").write_bytes(b"\x12\x00")
    big = folder / "variables" / "variables.data-00000-of-00001"
    with big.open("wb") as fh:
        fh.truncate(LINK_THRESHOLD + 1)
    (folder / "variables" / "variables.index").write_bytes(b"index")
    with private_copy(folder, get(ModelFormat.SAVEDMODEL).copy_policy) as copy:
        linked = copy / "variables" / big.name
        assert os.stat(linked).st_ino == os.stat(big).st_ino  # no multi-GB copy for pure data
        assert os.stat(copy / "saved_model.pb").st_ino != os.stat(folder / "saved_model.pb").st_ino
        assert (copy / "variables" / "variables.index").read_bytes() == b"index"
        big.rename(folder / "moved")  # the original is renamed away: the link keeps the checked inode
        assert linked.exists()


def test_special_files_and_escaping_symlinks_are_refused(tmp_path: Path) -> None:
    folder = tmp_path / "sm"
    folder.mkdir()
    (folder / "saved_model.pb").write_bytes(b"")
    os.mkfifo(folder / "pipe")
    with pytest.raises(ModelError, match="FIFO"), private_copy(folder, get(ModelFormat.SAVEDMODEL).copy_policy):
        pass  # and no hang on the FIFO
    (folder / "pipe").unlink()
    secret = tmp_path / "secret.txt"
    secret.write_text("secret")
    (folder / "link").symlink_to(secret)
    policy = get(ModelFormat.SAVEDMODEL).copy_policy
    with pytest.raises(ModelError, match="symlink leading out"), private_copy(folder, policy):
        pass
    (folder / "link").unlink()
    (folder / "inside").write_text("ok")
    (folder / "link").symlink_to(folder / "inside")  # inside the folder: its content is copied
    with private_copy(folder, get(ModelFormat.SAVEDMODEL).copy_policy) as copy:
        assert not (copy / "link").is_symlink() and (copy / "link").read_text() == "ok"


@pytest.mark.slow
def test_a_savedmodel_swapped_after_the_checks_is_not_loaded(tmp_path_factory: pytest.TempPathFactory,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """The hostile saved_model.pb is renamed over the checked one as soon as the worker starts
    (after every check, before TensorFlow loads anything): the worker loads the private copy."""
    from mlfit import api
    from mlfit.measure import launcher
    from mlfit.options import MeasureOptions
    from savedmodel_models import models

    given: list[tuple[str, bytes]] = []
    real_run_worker = launcher.run_worker

    def spy(request: object, *args: object, **kwargs: object) -> object:  # the real launcher, observed
        path = Path(request.model_path)  # type: ignore[attr-defined]
        given.append((str(path), (path / "saved_model.pb").read_bytes()))
        return real_run_worker(request, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(launcher, "run_worker", spy)

    built = models(tmp_path_factory.getbasetemp())
    folder = tmp_path_factory.mktemp("swap") / "model"
    shutil.copytree(built["module_savedmodel"], folder)
    hostile = Path(built["write_file"]) / "saved_model.pb"
    sentinel = Path(built["sentinel_write_file"])
    swapped: list[object] = []

    def swap(event: dict[str, object]) -> None:
        if not swapped:
            staged = folder / "staged.pb"
            shutil.copyfile(hostile, staged)
            staged.rename(folder / "saved_model.pb")
            swapped.append(event.get("phase") or event.get("kind") or event)

    options = MeasureOptions(min_time=0.2, max_time=1.0, warmup=1)
    result = api.check(folder, ["edge"], dims={"batch": 1}, options=options, on_event=swap)
    assert swapped, "the worker sent no event"
    assert (folder / "saved_model.pb").read_bytes() == hostile.read_bytes()  # the swap happened
    assert result.error is None, result.error
    assert result.model.path == str(folder.resolve())  # the report names the user's folder
    assert not sentinel.exists()  # the hostile graph never ran
    # the worker was pointed at the private copy, holding the checked bytes
    assert given and all(Path(p).parent.name.startswith("mlfit-model-") for p, _ in given)
    assert all(data != hostile.read_bytes() for _, data in given)
    # and the hostile folder itself is refused when checked now
    again = api.check(folder, ["edge"], dims={"batch": 1}, options=options)
    assert again.error is not None and "WriteFile" in again.error.message


def test_a_model_that_changes_kind_before_the_copy_is_refused(tmp_path: Path) -> None:
    import pickle
    import zipfile

    from mlfit.api import resolve_targets
    from mlfit.inputspec import InputSpec
    from mlfit.modelref import identify
    from mlfit.options import MeasureOptions
    from mlfit.run import run_model

    path = tmp_path / "model.bin"
    path.write_bytes(pickle.dumps({"x": 1}, protocol=4))
    ref = identify(path)
    assert ref.format is ModelFormat.PICKLE
    with zipfile.ZipFile(path, "w") as archive:  # replaced by something of another kind
        archive.writestr("schema.json", "{}")
    result = run_model(ref, resolve_targets(["edge"]), InputSpec(), MeasureOptions())
    assert result.error is not None and "changed while it was being checked" in result.error.message
    assert result.model.path == str(ref.path)


def _big_onnx(path: Path) -> Path:
    """The tiny Add model padded past the link threshold with a long ModelProto doc string
    (field 6, doc_string: zeros, a hole on disk), which every parser reads and ignores."""
    from mlfit.zoo import builders

    data = builders.tiny_add().SerializeToString()
    pad = LINK_THRESHOLD + 1
    header = _varint((6 << 3) | 2) + _varint(pad)
    path.write_bytes(data + header)
    with path.open("r+b") as fh:
        fh.truncate(len(data) + len(header) + pad)
    return path


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _rewrite_in_place(path: Path, data: bytes) -> None:
    """New content in the same inode (what a hard link would see), not a rename."""
    inode = os.stat(path).st_ino
    with path.open("r+b") as fh:
        fh.write(data)
        fh.truncate(len(data))
    assert os.stat(path).st_ino == inode


def test_graph_files_over_the_threshold_are_copied_never_linked(tmp_path: Path) -> None:
    """Issue 18 item 9: a large .onnx (and a SavedModel's large index or asset) is copied, so a
    rewrite in place after the checks never reaches the copy; variable shards may be linked."""
    model = _big_onnx(tmp_path / "big.onnx")
    checked = model.read_bytes()
    with private_copy(model, get(ModelFormat.ONNX).copy_policy) as copy:
        assert os.stat(copy).st_ino != os.stat(model).st_ino
        _rewrite_in_place(model, b"hostile graph")
        assert copy.read_bytes() == checked
    folder = tmp_path / "sm"
    (folder / "variables").mkdir(parents=True)
    (folder / "assets").mkdir()
    (folder / "saved_model.pb").write_bytes(b"\x12\x00")
    for rel in ("variables/variables.index", "assets/vocab.txt", "variables/variables.data-00000-of-00001"):
        with (folder / rel).open("wb") as fh:
            fh.truncate(LINK_THRESHOLD + 1)
    with private_copy(folder, get(ModelFormat.SAVEDMODEL).copy_policy) as copy:
        for rel in ("variables/variables.index", "assets/vocab.txt"):
            assert os.stat(copy / rel).st_ino != os.stat(folder / rel).st_ino, rel
        shard = "variables/variables.data-00000-of-00001"
        assert os.stat(copy / shard).st_ino == os.stat(folder / shard).st_ino  # pure tensor data


def test_a_big_onnx_rewritten_in_place_after_the_checks_runs_as_checked(tmp_path: Path) -> None:
    """The >64 MiB model is rewritten in place (same inode) as soon as the worker starts, with
    a graph the runtime cannot even load: the run measures the checked graph all the same."""
    from _hostile import custom_op_model
    from mlfit import api
    from mlfit.options import MeasureOptions

    model = _big_onnx(tmp_path / "big.onnx")
    hostile = custom_op_model(tmp_path / "hostile.onnx").read_bytes()
    swapped: list[object] = []

    def swap(event: dict[str, object]) -> None:
        if not swapped:
            _rewrite_in_place(model, hostile)
            swapped.append(event)

    options = MeasureOptions(min_time=0.05, max_time=0.3, warmup=1)
    result = api.check(model, ["edge"], options=options, on_event=swap)
    assert swapped, "the worker sent no event"
    assert model.read_bytes() == hostile  # the rewrite happened
    assert result.error is None, result.error  # the checked Add ran, not the rewritten graph
    again = api.check(model, ["edge"], options=options)
    assert again.error is not None  # the rewritten file itself cannot load
