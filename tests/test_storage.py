"""Cache files written by several processes at once (the chip and model caches)."""
from concurrent.futures import ThreadPoolExecutor

import pytest

from unlearn_core.storage import atomic_write


@pytest.mark.fast
def test_concurrent_writers_of_one_file_never_clash(tmp_path):
    target = tmp_path / "cache" / "chip.png"

    def write(i: int) -> None:
        atomic_write(target, lambda tmp: tmp.write_bytes(bytes([i]) * 50_000))

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(write, range(64)))  # a shared ".tmp" name made all but one writer fail here
    data = target.read_bytes()
    assert len(data) == 50_000 and len(set(data)) == 1, "one writer's whole file"
    assert [p.name for p in target.parent.iterdir()] == ["chip.png"], "no temporary files left behind"


@pytest.mark.fast
def test_a_failed_write_leaves_the_old_file(tmp_path):
    target = tmp_path / "model.safetensors"
    target.write_bytes(b"old")

    def fail(tmp):
        tmp.write_bytes(b"half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(target, fail)
    assert target.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["model.safetensors"]
