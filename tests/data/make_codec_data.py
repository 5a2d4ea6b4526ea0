#!/usr/bin/python3
"""Writes the small .npy and IDX fixtures read by tests/test_npy.c and tests/test_idx.c.

Run once with a Python that has numpy (/usr/bin/python3 here); the outputs are committed.
The expected values are spelled out again in the C tests, so a change here must be mirrored
there. `--fashion-mnist` prints the reference values test_idx.c embeds for the Debian
Fashion-MNIST files, read with Python's own gzip module.
"""
import gzip
import os
import struct
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
NPY = os.path.join(HERE, "npy")
IDX = os.path.join(HERE, "idx")


def save(name, arr, version=None):
    path = os.path.join(NPY, name)
    with open(path, "wb") as f:
        if version is None:
            np.save(f, arr, allow_pickle=(arr.dtype == object))
        else:
            np.lib.format.write_array(f, arr, version=version)


def npy_fixtures():
    os.makedirs(NPY, exist_ok=True)
    f4 = np.array([[1.5, -2.25, 3.0], [0.0, 0.1, -1e-3]], dtype="<f4")
    save("f4_2x3.npy", f4)
    save("f8_3.npy", np.array([0.1, -1e300, 3.141592653589793], dtype="<f8"))
    save("f2_4.npy", np.array([1.0, -2.5, 65504.0, 2.0 ** -14], dtype="<f2"))
    i8 = np.array([[-(2 ** 63), 2 ** 63 - 1], [0, -1]], dtype="<i8")
    save("i8_2x2.npy", i8)
    save("i4_5.npy", np.array([-(2 ** 31), 2 ** 31 - 1, 0, 1, -1], dtype="<i4"))
    save("i2_3.npy", np.array([-32768, 32767, 7], dtype="<i2"))
    save("i1_4.npy", np.array([-128, 127, 0, -1], dtype="i1"))
    save("u1_2x2.npy", np.array([[0, 255], [128, 1]], dtype="u1"))
    save("b1_5.npy", np.array([True, False, True, True, False]))
    save("scalar_f8.npy", np.array(2.5, dtype="<f8"))
    save("empty_f4.npy", np.zeros((0,), dtype="<f4"))
    save("empty_i4_2x0.npy", np.zeros((2, 0), dtype="<i4"))
    save("i4_2x3x4.npy", np.arange(24, dtype="<i4").reshape(2, 3, 4) * 3 - 5)
    # Fortran order: numpy writes the column-major bytes and 'fortran_order': True.
    save("fortran_f4_2x3x4.npy", np.asfortranarray(np.arange(24, dtype="<f4").reshape(2, 3, 4)))
    save("fortran_i2_3x2.npy", np.asfortranarray(np.array([[1, 2], [3, 4], [5, 6]], dtype="<i2")))
    # Big-endian copies of the same values.
    save("be_f4_2x3.npy", f4.astype(">f4"))
    save("be_i8_2x2.npy", i8.astype(">i8"))
    save("be_f8_3.npy", np.array([0.1, -1e300, 3.141592653589793], dtype=">f8"))
    save("be_i2_3.npy", np.array([-32768, 32767, 7], dtype=">i2"))
    save("be_i4_5.npy", np.array([-(2 ** 31), 2 ** 31 - 1, 0, 1, -1], dtype=">i4"))
    save("be_f2_4.npy", np.array([1.0, -2.5, 65504.0, 2.0 ** -14], dtype=">f2"))
    save("be_fortran_f8_2x3.npy", np.asfortranarray(np.arange(6, dtype=">f8").reshape(2, 3)))
    # Header versions 2.0 and 3.0.
    save("v2_f4_2x3.npy", f4, version=(2, 0))
    save("v3_u1_2x2.npy", np.array([[0, 255], [128, 1]], dtype="u1"), version=(3, 0))
    # Well-formed files we do not support.
    save("object.npy", np.array([1, "a", None], dtype=object))
    save("structured.npy", np.zeros(2, dtype=[("a", "<i4"), ("b", "<f8")]))
    save("unicode.npy", np.array(["abc", "de"]))
    save("u2.npy", np.array([1, 2], dtype="<u2"))
    save("c8.npy", np.array([1 + 2j], dtype="<c8"))


def idx_bytes(code, fmt, shape, values):
    head = struct.pack(">BBBB", 0, 0, code, len(shape)) + struct.pack(">%dI" % len(shape), *shape)
    return head + struct.pack(">%d%s" % (len(values), fmt), *values)


def write(name, data):
    with open(os.path.join(IDX, name), "wb") as f:
        f.write(data)


def idx_fixtures():
    os.makedirs(IDX, exist_ok=True)
    u8 = idx_bytes(0x08, "B", (3, 4), [0, 1, 2, 3, 127, 128, 200, 255, 9, 8, 7, 6])
    i16 = idx_bytes(0x0B, "h", (2, 3), [-32768, -1, 0, 1, 256, 32767])
    write("u8_3x4.idx", u8)
    write("i8_5.idx", idx_bytes(0x09, "b", (5,), [-128, -1, 0, 1, 127]))
    write("i16_2x3.idx", i16)
    write("i32_4.idx", idx_bytes(0x0C, "i", (4,), [-(2 ** 31), -2, 65536, 2 ** 31 - 1]))
    write("f32_2x2.idx", idx_bytes(0x0D, "f", (2, 2), [1.5, -0.25, 3.0e38, 1e-3]))
    write("f64_3.idx", idx_bytes(0x0E, "d", (3,), [0.1, -2.5, 1e300]))
    write("u8_2x0x3.idx", idx_bytes(0x08, "B", (2, 0, 3), []))
    write("u8_3x4.idx.gz", gzip.compress(u8, mtime=0))
    write("i16_2x3.idx.gz", gzip.compress(i16, mtime=0))
    # Two gzip members, split inside the header: gzip readers concatenate them.
    write("u8_3x4_2members.gz", gzip.compress(u8[:6], mtime=0) + gzip.compress(u8[6:], mtime=0))


def fashion_mnist():
    base = "/usr/share/datasets/fashion-mnist/"
    for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz",
                 "train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"):
        with gzip.open(base + name, "rb") as f:
            data = f.read()
        ndim = data[3]
        dims = struct.unpack(">%dI" % ndim, data[4:4 + 4 * ndim])
        body = data[4 + 4 * ndim:]
        print(name, "dims", dims, "bytes", len(body), "sum", sum(body))
        if ndim == 1:
            print("  first", list(body[:10]), "last", body[-1])
        else:
            img = dims[1] * dims[2]
            for n, r, c in ((0, 14, 14), (0, 10, 20), (1, 5, 7), (dims[0] - 1, 13, 13)):
                print("  image %d row %d col %d = %d" % (n, r, c, body[n * img + r * dims[2] + c]))
            print("  image 0 sum", sum(body[:img]), "last image sum", sum(body[-img:]))


if __name__ == "__main__":
    if "--fashion-mnist" in sys.argv:
        fashion_mnist()
    else:
        npy_fixtures()
        idx_fixtures()
