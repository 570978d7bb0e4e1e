"""The PNG and tar bytes synthset writes by hand: what the standard readers give back, and the stdlib's own headers."""

import io
import tarfile

import numpy as np
import pytest
from PIL import Image

from synthset.generation.writers import build_tar, encode_png, tar_header


@pytest.mark.parametrize("shape", [(1, 16, 16), (3, 5, 7), (1, 1, 1)])
def test_pil_decodes_our_png_to_the_same_pixels(shape) -> None:
    image = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    decoded = Image.open(io.BytesIO(encode_png(image)))
    assert decoded.mode == ("L" if shape[0] == 1 else "RGB")
    expected = image[0] if shape[0] == 1 else image.transpose(1, 2, 0)
    assert np.array_equal(np.asarray(decoded), expected)
    assert encode_png(image) == encode_png(image.copy())


@pytest.mark.parametrize(("name", "size"), [("00000001.png", 317), ("12345678.cls", 1), ("x", 0), ("a" * 99, 10**9)])
def test_tar_header_is_the_stdlibs_byte_for_byte(name, size) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode = size, 0o444
    assert tar_header(name, size) == info.tobuf(tarfile.USTAR_FORMAT)


def test_a_built_shard_reads_back_with_tarfile(tmp_path) -> None:
    images = np.random.default_rng(1).integers(0, 256, (3, 1, 8, 8), dtype=np.uint8)
    path = tmp_path / "shard.tar"
    digest = build_tar(str(path), [10, 11, 12], images, np.array([4, 0, 9]))
    with tarfile.open(path) as archive:
        assert archive.getnames() == ["00000010.png", "00000010.cls", "00000011.png", "00000011.cls",
                                      "00000012.png", "00000012.cls"]
        assert archive.extractfile("00000012.cls").read() == b"9"
        assert np.array_equal(np.asarray(Image.open(archive.extractfile("00000011.png"))), images[1][0])
    assert len(digest) == 64
