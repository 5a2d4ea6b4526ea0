#!/usr/bin/python3
"""Write the datasets and references for tests/test_dataset.c and tests/test_metric.c.

Usage: /usr/bin/python3 tests/gen_data_refs.py OUTDIR [--fashion DIR] [--stamp FILE]
(needs torch, numpy and PIL; torchvision, when present, cross-checks the preprocessing.)

Datasets (written here, read by the C test):
  fmnist_png/<label>/<index>.png  the first 100 Fashion-MNIST t10k images as 8-bit gray PNGs,
                                  written with zlib only; fmnist_ref.npy: ToTensor + Normalize of
                                  the first 16 images (torchvision semantics),
                                  fmnist_ref_labels.npy.
  rgb/<class>/...                 an ImageFolder of RGB, gray, RGBA and palette PNGs of mixed sizes,
                                  nested folders and a skipped text file; rgb_<v>.npy: the batch
                                  torchvision's ImageFolder gives with transform <v> (see VARIANTS),
                                  rgb_labels.npy, rgb_files.txt (the order, relative paths).
  seg/images, seg/masks           images and label PNGs (8-, 4- and 2-bit palette, 8-bit gray, 255 =
                                  ignore); seg_<v>_inputs.npy / seg_<v>_masks.npy: image resized
                                  bilinear and mask nearest, as torchvision segmentation references.
  jpg/x/*.jpg, jpg_ref.npy        two 32x24 JPEGs and PIL's decoding (stb_image differs slightly).
  err_size, err_bad               an ImageFolder with one image of another size; one with a
                                  corrupt PNG.
Metrics: m_*.npy inputs and metrics.txt ("name value" lines, values computed in float64).
"""
import argparse
import gzip
import os
import shutil
import struct
import zlib

import numpy as np
import torch
from PIL import Image

try:
    import torchvision.transforms as T
    from torchvision.datasets import ImageFolder
except Exception:  # the torch 2 virtual environment has no torchvision
    T = None

OUT = None


def path(*p):
    return os.path.join(OUT, *p)


def save(name, arr):
    np.save(path(name), arr)


def write_png(fname, arr):
    """8-bit gray (H,W) or RGB (H,W,3) PNG with the standard library's zlib only."""
    arr = np.ascontiguousarray(arr, dtype=np.uint8)
    h, w = arr.shape[:2]
    ctype = 0 if arr.ndim == 2 else 2

    def chunk(tag, data):
        return (struct.pack(">I", len(data)) + tag + data +
                struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF))

    raw = b"".join(b"\x00" + arr[y].tobytes() for y in range(h))
    with open(fname, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n")
        f.write(chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, ctype, 0, 0, 0)))
        f.write(chunk(b"IDAT", zlib.compress(raw, 9)))
        f.write(chunk(b"IEND", b""))


# ---- torchvision's transforms on PIL images, written out (cross-checked with torchvision) -------
def tv_resize(img, size, interp=Image.BILINEAR):
    w, h = img.size
    if isinstance(size, int):
        short, long_ = (w, h) if w <= h else (h, w)
        new_short, new_long = size, int(size * long_ / short)
        nw, nh = (new_short, new_long) if w <= h else (new_long, new_short)
    else:
        nh, nw = size
    if (nw, nh) == (w, h):
        return img
    return img.resize((nw, nh), interp)


def tv_center_crop(img, ch, cw):
    w, h = img.size
    top = int(round((h - ch) / 2.0))
    left = int(round((w - cw) / 2.0))
    return img.crop((left, top, left + cw, top + ch))


def to_tensor(img):
    a = np.asarray(img, dtype=np.uint8)
    if a.ndim == 2:
        a = a[:, :, None]
    return torch.from_numpy(a.transpose(2, 0, 1).copy()).to(torch.float32).div(255)


def normalize(t, mean, std):
    m = torch.as_tensor(mean, dtype=torch.float32)[:, None, None]
    s = torch.as_tensor(std, dtype=torch.float32)[:, None, None]
    return t.sub(m).div(s)


def pipeline(img, gray=False, resize=None, crop=None, mean=None, std=None):
    img = img.convert("RGB")  # torchvision's pil_loader
    if gray:
        img = img.convert("L")
    if resize is not None:
        img = tv_resize(img, resize)
    if crop is not None:
        img = tv_center_crop(img, *crop)
    t = to_tensor(img)
    if mean is not None:
        t = normalize(t, mean, std)
    return t


def tv_compose(gray=False, resize=None, crop=None, mean=None, std=None):
    steps = []
    if gray:
        steps.append(T.Grayscale(1))
    if resize is not None:
        steps.append(T.Resize(resize))
    if crop is not None:
        steps.append(T.CenterCrop(crop))
    steps.append(T.ToTensor())
    if mean is not None:
        steps.append(T.Normalize(mean, std))
    return T.Compose(steps)


IMNET_MEAN = (0.485, 0.456, 0.406)
IMNET_STD = (0.229, 0.224, 0.225)
# name -> pipeline keyword arguments; the C test opens the folder with the same options.
VARIANTS = {
    "a": dict(resize=24, crop=(20, 22), mean=IMNET_MEAN, std=IMNET_STD),
    "b": dict(gray=True, resize=(17, 31)),
    "c": dict(resize=60, crop=(50, 50)),
}


def smooth_image(rng, h, w, c):
    """Gradients plus noise: resampling errors show, and every level is used."""
    yy, xx = np.mgrid[0:h, 0:w]
    chans = []
    for k in range(c):
        base = 127 + 100 * np.sin(xx / (3.0 + k) + yy / (5.0 + 2 * k) + k)
        chans.append(base + rng.integers(-25, 26, size=(h, w)))
    a = np.clip(np.stack(chans, axis=-1), 0, 255).astype(np.uint8)
    return a[:, :, 0] if c == 1 else a


# ---- Fashion-MNIST -------------------------------------------------------------------------------
def read_idx_gz(fname):
    with gzip.open(fname, "rb") as f:
        data = f.read()
    ndim = data[3]
    dims = struct.unpack(">" + "I" * ndim, data[4:4 + 4 * ndim])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def gen_fashion(fdir):
    images = read_idx_gz(os.path.join(fdir, "t10k-images-idx3-ubyte.gz"))[:100]
    labels = read_idx_gz(os.path.join(fdir, "t10k-labels-idx1-ubyte.gz"))[:100]
    root = path("fmnist_png")
    for i in range(100):
        d = os.path.join(root, str(int(labels[i])))
        os.makedirs(d, exist_ok=True)
        write_png(os.path.join(d, "%05d.png" % i), images[i])
    mean, std = (0.2860,), (0.3530,)
    ref = torch.stack([pipeline(Image.fromarray(images[i], mode="L"), gray=True, mean=mean,
                                std=std) for i in range(16)])
    if T is not None:
        tv = T.Compose([T.ToTensor(), T.Normalize(mean, std)])
        alt = torch.stack([tv(Image.fromarray(images[i], mode="L")) for i in range(16)])
        assert torch.equal(ref, alt), "fashion reference differs from torchvision"
    save("fmnist_ref.npy", ref.numpy())
    save("fmnist_ref_labels.npy", labels[:16].astype(np.int64))


# ---- RGB ImageFolder -----------------------------------------------------------------------------
def gen_rgb(rng):
    root = path("rgb")
    # (relative path, (width, height), PIL mode)
    files = [
        ("Zebra/z1.png", (40, 30), "RGB"),
        ("Zebra/z0.png", (23, 37), "L"),
        ("cat/b.png", (64, 48), "RGB"),
        ("cat/sub/a.png", (31, 31), "RGBA"),
        ("cat/a-b/c.png", (50, 29), "P"),
        ("dog/X.PNG", (26, 41), "RGB"),
        ("dog/y.bmp", (33, 45), "RGB"),
    ]
    for rel, (w, h), mode in files:
        os.makedirs(os.path.dirname(os.path.join(root, rel)), exist_ok=True)
        if mode == "L":
            img = Image.fromarray(smooth_image(rng, h, w, 1), mode="L")
        elif mode == "RGBA":
            img = Image.fromarray(smooth_image(rng, h, w, 4), mode="RGBA")
        elif mode == "P":
            img = Image.fromarray(smooth_image(rng, h, w, 3), mode="RGB").quantize(colors=200)
        else:
            img = Image.fromarray(smooth_image(rng, h, w, 3), mode="RGB")
        img.save(os.path.join(root, rel))
    with open(os.path.join(root, "cat", "notes.txt"), "w") as f:
        f.write("not an image\n")
    # torchvision's order: classes sorted; per class sorted(os.walk) then sorted names.
    classes = sorted(e.name for e in os.scandir(root) if e.is_dir())
    order = []
    for ci, cname in enumerate(classes):
        for dirpath, _, fnames in sorted(os.walk(os.path.join(root, cname))):
            for fn in sorted(fnames):
                if fn.lower().endswith((".png", ".bmp", ".jpg", ".jpeg")):
                    order.append((os.path.relpath(os.path.join(dirpath, fn), root), ci))
    with open(path("rgb_files.txt"), "w") as f:
        for rel, _ in order:
            f.write(rel + "\n")
    save("rgb_labels.npy", np.array([c for _, c in order], dtype=np.int64))
    for name, kw in VARIANTS.items():
        batch = torch.stack([pipeline(Image.open(os.path.join(root, rel)), **kw)
                             for rel, _ in order])
        if T is not None:
            ds = ImageFolder(root, transform=tv_compose(**kw))
            assert [os.path.relpath(p, root) for p, _ in ds.samples] == [r for r, _ in order]
            alt = torch.stack([ds[i][0] for i in range(len(ds))])
            assert torch.equal(batch, alt), "variant %s differs from torchvision" % name
        save("rgb_%s.npy" % name, batch.numpy())


# ---- Segmentation folder -------------------------------------------------------------------------
SEG_VARIANTS = {
    "a": dict(resize=16, crop=(14, 15), mean=(0.5,), std=(0.25,)),
    "b": dict(resize=(13, 9)),
}


def gen_seg(rng):
    idir, mdir = path("seg", "images"), path("seg", "masks")
    os.makedirs(idir)
    os.makedirs(mdir)
    # (stem, (width, height), mask kind)
    items = [("s0", (30, 22), "P8"), ("s1", (17, 25), "L"), ("s2", (40, 40), "P4"),
             ("s3", (21, 33), "P2")]
    for stem, (w, h), kind in items:
        img = Image.fromarray(smooth_image(rng, h, w, 3), mode="RGB")
        img.save(os.path.join(idir, stem + ".png"))
        if kind == "P2":
            lab = rng.integers(0, 4, size=(h, w)).astype(np.uint8)
        else:
            lab = rng.integers(0, 6, size=(h, w)).astype(np.uint8)
            lab[rng.random((h, w)) < 0.1] = 255 if kind in ("P8", "L") else 0
            if kind == "P4":
                lab[lab > 15] = 15
        m = Image.fromarray(lab, mode="L" if kind == "L" else "P")
        if kind == "P4":
            m.putpalette([v for i in range(16) for v in (i * 16, 255 - i * 16, i)])
        elif kind == "P2":
            m.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0, 0, 0, 255])
        elif kind == "P8":
            m.putpalette([v for i in range(256) for v in (i, (7 * i) % 256, (13 * i) % 256)])
        m.save(os.path.join(mdir, stem + ".png"))
        # Our decoder must give what PIL gives; so must the file's bit depth be what we meant.
        assert np.array_equal(np.asarray(Image.open(os.path.join(mdir, stem + ".png"))), lab)
    with open(os.path.join(idir, "readme.txt"), "w") as f:
        f.write("skipped\n")
    for name, kw in SEG_VARIANTS.items():
        xs, ys = [], []
        for stem, _, _ in items:
            img = Image.open(os.path.join(idir, stem + ".png"))
            xs.append(pipeline(img, **kw))
            m = Image.open(os.path.join(mdir, stem + ".png"))
            m = tv_resize(m, kw["resize"], Image.NEAREST)
            if "crop" in kw:
                m = tv_center_crop(m, *kw["crop"])
            ys.append(torch.as_tensor(np.array(m), dtype=torch.int64))
        save("seg_%s_inputs.npy" % name, torch.stack(xs).numpy())
        save("seg_%s_masks.npy" % name, torch.stack(ys).numpy())
    # Nearest resizes of one mask to many sizes (PIL steps the source position in double).
    m = Image.open(os.path.join(mdir, "s0.png"))
    with open(path("seg_nearest.txt"), "w") as f:
        for (ow, oh) in [(7, 5), (29, 21), (31, 23), (90, 66), (13, 17), (3, 11)]:
            r = np.asarray(m.resize((ow, oh), Image.NEAREST), dtype=np.int64)
            fn = "seg_nearest_%dx%d.npy" % (ow, oh)
            save(fn, r)
            f.write("%d %d %s\n" % (ow, oh, fn))


def gen_jpeg(rng):
    d = path("jpg", "x")
    os.makedirs(d)
    refs = []
    for i in range(2):
        fn = os.path.join(d, "j%d.jpg" % i)
        Image.fromarray(smooth_image(rng, 24, 32, 3), mode="RGB").save(fn, quality=95)
        refs.append(to_tensor(Image.open(fn).convert("RGB")))
    save("jpg_ref.npy", torch.stack(refs).numpy())


def gen_errors(rng):
    d = path("err_size", "k")
    os.makedirs(d)
    write_png(os.path.join(d, "a.png"), smooth_image(rng, 28, 28, 1))
    write_png(os.path.join(d, "b.png"), smooth_image(rng, 30, 28, 1))
    d = path("err_bad", "k")
    os.makedirs(d)
    write_png(os.path.join(d, "a.png"), smooth_image(rng, 8, 8, 1))
    with open(os.path.join(d, "b.png"), "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + bytes(rng.integers(0, 256, size=200, dtype=np.uint8)))


# ---- Metrics -------------------------------------------------------------------------------------
def gen_metrics(rng):
    lines = []

    def put(name, v):
        lines.append("%s %r" % (name, float(v)))

    # Classification: 37 samples, 10 classes.
    logits = torch.from_numpy((rng.standard_normal((37, 10)) * 3).astype(np.float32))
    labels = torch.from_numpy(rng.integers(0, 10, size=37).astype(np.int64))
    save("m_cls_logits.npy", logits.numpy())
    save("m_cls_labels.npy", labels.numpy())
    ld = logits.double()
    top5 = ld.topk(5, dim=1).indices
    put("top1", (ld.argmax(1) == labels).double().mean())
    put("top5", (top5 == labels[:, None]).any(1).double().mean())
    put("cross_entropy", torch.nn.functional.cross_entropy(ld, labels))
    put("cross_entropy_f32", torch.nn.functional.cross_entropy(logits, labels))

    # Segmentation: 6 classes, class 5 neither predicted nor in the target (left out of the mean).
    K = 6
    seg = (rng.standard_normal((3, K, 7, 9)) * 2).astype(np.float32)
    seg[:, 5] = -50
    tgt = rng.integers(0, 5, size=(3, 7, 9)).astype(np.int64)
    tgt[rng.random((3, 7, 9)) < 0.15] = 255
    save("m_seg_logits.npy", seg)
    save("m_seg_target.npy", tgt)

    def seg_ref(pred, t, k):
        keep = t != 255
        conf = torch.bincount(torch.from_numpy(t[keep] * k + pred[keep]), minlength=k * k)
        conf = conf.reshape(k, k).double()
        tp = conf.diag()
        union = conf.sum(0) + conf.sum(1) - tp
        iou = tp / union  # NaN where the class is absent from both
        return torch.nanmean(iou), tp.sum() / conf.sum()

    miou, pacc = seg_ref(torch.from_numpy(seg).argmax(1).numpy(), tgt, K)
    put("miou", miou)
    put("pixel_accuracy", pacc)
    # Binary segmentation: one channel, class 1 where the logit > 0.
    blog = rng.standard_normal((2, 1, 5, 4)).astype(np.float32)
    btgt = rng.integers(0, 2, size=(2, 5, 4)).astype(np.int64)
    save("m_bin_logits.npy", blog)
    save("m_bin_target.npy", btgt)
    bmiou, bpacc = seg_ref((blog[:, 0] > 0).astype(np.int64), btgt, 2)
    put("bin_miou", bmiou)
    put("bin_pixel_accuracy", bpacc)

    # Fidelity: per-sample cosine of the flattened outputs; sample 2 identical, sample 4 all zero
    # in both (cosine 1 by our definition), sample 5 zero in the output only (cosine 0).
    out = rng.standard_normal((6, 4, 3, 2)).astype(np.float32)
    ref = (out + 0.3 * rng.standard_normal(out.shape)).astype(np.float32)
    ref[2] = out[2]
    out[4] = 0
    ref[4] = 0
    out[5] = 0
    out2 = rng.standard_normal((6, 5)).astype(np.float32)
    ref2 = (out2 - 0.5 * rng.standard_normal(out2.shape)).astype(np.float32)
    out2[4] = 0
    ref2[4] = 0
    out2[5] = 0
    for n, a in [("m_fid_out", out), ("m_fid_ref", ref), ("m_fid_out2", out2),
                 ("m_fid_ref2", ref2)]:
        save(n + ".npy", a)

    def cos_mean(pairs):
        vals = []
        for s in range(6):
            a = torch.cat([torch.from_numpy(p[s]).double().flatten() for p, _ in pairs])
            b = torch.cat([torch.from_numpy(q[s]).double().flatten() for _, q in pairs])
            na, nb = a.norm(), b.norm()
            if na == 0 and nb == 0:
                vals.append(1.0)
            elif na == 0 or nb == 0:
                vals.append(0.0)
            else:
                vals.append(float(a.dot(b) / (na * nb)))
        return sum(vals) / len(vals)

    put("fidelity", cos_mean([(out, ref)]))
    put("fidelity_multi", cos_mean([(out, ref), (out2, ref2)]))
    # torch's own cosine on samples 0-3 (no zero vectors): cross-checks the formula.
    tc = torch.nn.functional.cosine_similarity(torch.from_numpy(out[:4]).double().flatten(1),
                                               torch.from_numpy(ref[:4]).double().flatten(1))
    put("fidelity_first4", tc.mean())
    with open(path("metrics.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")


def main():
    global OUT
    ap = argparse.ArgumentParser()
    ap.add_argument("outdir")
    ap.add_argument("--fashion", default="/usr/share/datasets/fashion-mnist")
    ap.add_argument("--stamp")
    args = ap.parse_args()
    OUT = args.outdir
    if os.path.isdir(OUT):
        shutil.rmtree(OUT)
    os.makedirs(OUT)
    rng = np.random.default_rng(20261205)
    gen_metrics(rng)
    gen_rgb(rng)
    gen_seg(rng)
    gen_jpeg(rng)
    gen_errors(rng)
    if os.path.exists(os.path.join(args.fashion, "t10k-images-idx3-ubyte.gz")):
        gen_fashion(args.fashion)
    if args.stamp:
        open(args.stamp, "w").close()


if __name__ == "__main__":
    main()
