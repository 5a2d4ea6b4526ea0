/* Label PNGs for segmentation targets: one class index per pixel. stb_image expands palette PNGs
 * to RGB, losing the index that is the class, so these are decoded here. */
#include "label_png.h"

#include <inttypes.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

/* Same bound as images in engine/dataset.c: the header is checked before anything is allocated. */
#define MAX_PIXELS ((int64_t)1 << 26)

typedef struct mask {
    int w, h;
    int32_t *v;
} mask;

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int paeth(int a, int b, int c)
{
    int p = a + b - c, pa = abs(p - a), pb = abs(p - b), pc = abs(p - c);
    if (pa <= pb && pa <= pc)
        return a;
    return pb <= pc ? b : c;
}

static int decode_label_png(const unsigned char *p, size_t n, const char *path, mask *out,
                            npe_error *err)
{
    static const unsigned char sig[8] = {0x89, 'P', 'N', 'G', 0x0D, 0x0A, 0x1A, 0x0A};
    if (n < 8 || memcmp(p, sig, 8) != 0)
        return npe_error_set(err, NPE_EFORMAT, "%s: not a PNG file (label masks must be PNG)",
                             path);
    size_t pos = 8;
    int have_ihdr = 0, depth = 0, ctype = 0, done = 0, stream_end = 0, r = 0;
    uint32_t w = 0, h = 0;
    size_t rowbytes = 0, total = 0, got = 0;
    unsigned char *raw = NULL;
    z_stream zs;
    int zinit = 0;
    while (!done) {
        if (n - pos < 12) {
            r = npe_error_set(err, NPE_EFORMAT, "%s: truncated PNG at offset %zu (no IEND chunk)",
                              path, pos);
            goto out;
        }
        uint32_t len = be32(p + pos);
        const unsigned char *type = p + pos + 4, *data = p + pos + 8;
        if (len > n - pos - 12) {
            r = npe_error_set(err, NPE_EFORMAT, "%s: PNG chunk at offset %zu claims %" PRIu32
                              " bytes, %zu remain", path, pos, len, n - pos - 12);
            goto out;
        }
        uint32_t crc = (uint32_t)crc32(crc32(0L, Z_NULL, 0), type, len + 4);
        if (crc != be32(data + len)) {
            r = npe_error_set(err, NPE_EFORMAT, "%s: PNG chunk %.4s at offset %zu: CRC mismatch",
                              path, (const char *)type, pos);
            goto out;
        }
        if (!have_ihdr && memcmp(type, "IHDR", 4) != 0) {
            r = npe_error_set(err, NPE_EFORMAT, "%s: PNG does not start with an IHDR chunk",
                              path);
            goto out;
        }
        if (!memcmp(type, "IHDR", 4)) {
            if (have_ihdr || len != 13) {
                r = npe_error_set(err, NPE_EFORMAT, "%s: bad PNG IHDR chunk", path);
                goto out;
            }
            have_ihdr = 1;
            w = be32(data);
            h = be32(data + 4);
            depth = data[8];
            ctype = data[9];
            if (ctype != 0 && ctype != 3) {
                const char *what = ctype == 2 ? "RGB" : ctype == 4 ? "gray+alpha"
                                   : ctype == 6 ? "RGBA" : "unknown";
                r = npe_error_set(err, NPE_EUNSUPPORTED,
                                  "%s: label PNG is %s (color type %d); expected one class index "
                                  "per pixel: grayscale or palette",
                                  path, what, ctype);
                goto out;
            }
            if (!(depth == 1 || depth == 2 || depth == 4 || depth == 8 ||
                  (depth == 16 && ctype == 0)) || data[10] != 0 || data[11] != 0) {
                r = npe_error_set(err, NPE_EFORMAT, "%s: bad PNG header (bit depth %d, color "
                                  "type %d, compression %d, filter %d)",
                                  path, depth, ctype, data[10], data[11]);
                goto out;
            }
            if (data[12] != 0) {
                r = npe_error_set(err, NPE_EUNSUPPORTED,
                                  "%s: interlaced label PNG; save it without interlacing", path);
                goto out;
            }
            if (w == 0 || h == 0 || (uint64_t)w * h > (uint64_t)MAX_PIXELS) {
                r = npe_error_set(err, NPE_ELIMIT, "%s: label PNG of %" PRIu32 "x%" PRIu32
                                  " pixels, the limit is %" PRId64 " pixels",
                                  path, w, h, MAX_PIXELS);
                goto out;
            }
            rowbytes = ((size_t)w * depth + 7) / 8;
            total = (rowbytes + 1) * h;
            raw = malloc(total + 1);
            if (!raw) {
                r = npe_error_set(err, NPE_ENOMEM, "%s: out of memory for the label PNG", path);
                goto out;
            }
            memset(&zs, 0, sizeof(zs));
            if (inflateInit(&zs) != Z_OK) {
                r = npe_error_set(err, NPE_ENOMEM, "%s: cannot start zlib", path);
                goto out;
            }
            zinit = 1;
            zs.next_out = raw;
            zs.avail_out = (uInt)(total + 1);
        } else if (!memcmp(type, "IDAT", 4)) {
            zs.next_in = (unsigned char *)data;
            zs.avail_in = len;
            while (zs.avail_in > 0) {
                if (stream_end) {
                    r = npe_error_set(err, NPE_EFORMAT, "%s: data after the end of the PNG "
                                      "image stream", path);
                    goto out;
                }
                /* One spare output byte: data past the header's size shows up as got > total
                 * instead of a stall. */
                int zr = inflate(&zs, Z_NO_FLUSH);
                if (zr == Z_STREAM_END)
                    stream_end = 1;
                else if (zr != Z_OK) {
                    r = npe_error_set(err, NPE_EFORMAT, "%s: corrupt PNG image data (%s)", path,
                                      zs.msg ? zs.msg : "more data than the image size");
                    goto out;
                }
            }
        } else if (!memcmp(type, "IEND", 4)) {
            done = 1;
        } else if (!(type[0] & 0x20)) {
            /* Critical chunks other than IHDR, PLTE, IDAT, IEND do not exist in PNG 1.2. */
            if (memcmp(type, "PLTE", 4) != 0) {
                r = npe_error_set(err, NPE_EUNSUPPORTED, "%s: unknown critical PNG chunk %.4s",
                                  path, (const char *)type);
                goto out;
            }
        }
        pos += (size_t)len + 12;
    }
    got = zinit ? total + 1 - zs.avail_out : 0;
    if (!zinit || !stream_end || got != total) {
        r = npe_error_set(err, NPE_EFORMAT, "%s: PNG image data holds %zu bytes, %" PRIu32 "x%"
                          PRIu32 " pixels need %zu", path, got, w, h, total);
        goto out;
    }
    /* Undo the per-row filters in place; bpp is the byte distance to the left neighbour. */
    size_t bpp = depth == 16 ? 2 : 1;
    for (uint32_t y = 0; y < h; y++) {
        unsigned char *row = raw + (size_t)y * (rowbytes + 1);
        unsigned char *cur = row + 1;
        const unsigned char *up = y ? row - rowbytes : NULL;
        int f = row[0];
        if (f > 4) {
            r = npe_error_set(err, NPE_EFORMAT, "%s: PNG row %" PRIu32 " has filter type %d "
                              "(expected 0-4)", path, y, f);
            goto out;
        }
        for (size_t i = 0; i < rowbytes; i++) {
            int a = i >= bpp ? cur[i - bpp] : 0, b = up ? up[i] : 0;
            int c = (i >= bpp && up) ? up[i - bpp] : 0, v = cur[i];
            switch (f) {
            case 1: v += a; break;
            case 2: v += b; break;
            case 3: v += (a + b) / 2; break;
            case 4: v += paeth(a, b, c); break;
            default: break;
            }
            cur[i] = (unsigned char)v;
        }
    }
    out->v = malloc((size_t)w * h * sizeof(int32_t));
    if (!out->v) {
        r = npe_error_set(err, NPE_ENOMEM, "%s: out of memory for the label mask", path);
        goto out;
    }
    out->w = (int)w;
    out->h = (int)h;
    for (uint32_t y = 0; y < h; y++) {
        const unsigned char *cur = raw + (size_t)y * (rowbytes + 1) + 1;
        int32_t *dst = out->v + (size_t)y * w;
        for (uint32_t x = 0; x < w; x++) {
            if (depth == 16)
                dst[x] = cur[2 * x] << 8 | cur[2 * x + 1];
            else if (depth == 8)
                dst[x] = cur[x];
            else {
                size_t bit = (size_t)x * depth;
                int shift = 8 - depth - (int)(bit % 8);
                dst[x] = (cur[bit / 8] >> shift) & ((1 << depth) - 1);
            }
        }
    }
out:
    if (zinit)
        inflateEnd(&zs);
    free(raw);
    return r;
}

int npe_label_png_decode(const void *buf, size_t size, const char *name, int32_t **values,
                         int *w, int *h, npe_error *err)
{
    mask m = {0};
    *values = NULL;
    *w = *h = 0;
    int r = decode_label_png(buf ? buf : (const void *)"", buf ? size : 0, name, &m, err);
    if (r)
        return r;
    *values = m.v;
    *w = m.w;
    *h = m.h;
    return 0;
}

