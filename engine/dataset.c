/* Evaluation datasets (see dataset.h for the exact preprocessing): folder listing, image and
 * label-PNG decoding, PIL-exact bilinear/nearest resizing, center crop and batch assembly. */
#define _POSIX_C_SOURCE 200809L /* strdup, opendir */
#include "dataset.h"

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

#include <stb_image.h>

#include "../formats/fileio.h"
#include "../formats/idx.h"
#include "../formats/label_png.h"
#include "../formats/npy.h"

/* Largest decoded image or mask (8192 x 8192): checked from the header before decoding. */
#define MAX_PIXELS ((int64_t)1 << 26)
/* Largest resize or crop side an option may ask for. */
#define MAX_SIDE 65536
/* Sub-folders followed below a class folder (symbolic links can make cycles). */
#define MAX_WALK_DEPTH 16
/* PIL's fixed-point precision for 8-bit resampling weights. */
#define PRECISION_BITS 22

struct npe_dataset {
    npe_dataset_opts o; /* path members point at the copies below */
    char *root, *masks, *images_path, *labels_path;
    int64_t n;                 /* samples after limit */
    npe_dataset_target target;
    int sample_ndim;
    int64_t sample_shape[NPE_MAX_DIMS];
    int64_t th, tw;            /* masks: size of one target */
    int image_source;          /* imagefolder or idx: the uint8 pipeline applies */
    int c, h, w;               /* image sources: output channels and size */
    float mean[3], std[3];     /* per output channel (broadcast already) */
    int norm;
    /* imagefolder */
    char **files, **mask_files; /* n entries each (mask_files only for segmentation) */
    int64_t *file_labels;
    char **classes;
    int n_classes;
    /* idx, npy */
    npe_array in, lab;
    int src_c;                 /* idx: channels in the file */
    /* callback */
    const npe_data_source *src;
    pthread_mutex_t lock;      /* serialises src->read unless src->concurrent */
    int64_t tshape[NPE_MAX_DIMS]; /* one sample's target */
    int tndim;
};

void npe_dataset_opts_init(npe_dataset_opts *o)
{
    memset(o, 0, sizeof(*o));
    o->kind = NPE_DATASET_IMAGEFOLDER;
    o->scale = 1;
    for (int i = 0; i < 3; i++)
        o->std[i] = 1.0;
}

/* ---- Small helpers -------------------------------------------------------------------------- */

static const char *kind_name(npe_dataset_kind k)
{
    switch (k) {
    case NPE_DATASET_IMAGEFOLDER: return "imagefolder";
    case NPE_DATASET_IDX: return "idx";
    case NPE_DATASET_NPY: return "npy";
    case NPE_DATASET_CALLBACK: return "callback";
    }
    return "?";
}

static char *join_path(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    int slash = la > 0 && a[la - 1] != '/';
    char *s = malloc(la + slash + lb + 1);
    if (!s)
        return NULL;
    memcpy(s, a, la);
    if (slash)
        s[la] = '/';
    memcpy(s + la + slash, b, lb + 1);
    return s;
}

static int ends_with_ci(const char *s, const char *suffix)
{
    size_t ls = strlen(s), lx = strlen(suffix);
    if (ls < lx)
        return 0;
    s += ls - lx;
    for (size_t i = 0; i < lx; i++) {
        char c = s[i];
        if (c >= 'A' && c <= 'Z')
            c = (char)(c - 'A' + 'a');
        if (c != suffix[i])
            return 0;
    }
    return 1;
}

static int is_image_name(const char *name)
{
    static const char *const ext[] = {".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".pgm", NULL};
    for (int i = 0; ext[i]; i++)
        if (ends_with_ci(name, ext[i]))
            return 1;
    return 0;
}

/* torchvision counts these as images; stb_image cannot decode them, so refusing beats skipping
 * (skipping would silently change the dataset). */
static int is_unsupported_image_name(const char *name)
{
    return ends_with_ci(name, ".tif") || ends_with_ci(name, ".tiff") ||
           ends_with_ci(name, ".webp");
}

static int is_integer_dtype(npe_dtype t)
{
    return t == NPE_DTYPE_I64 || t == NPE_DTYPE_I32 || t == NPE_DTYPE_I16 || t == NPE_DTYPE_I8 ||
           t == NPE_DTYPE_U8;
}

static int64_t get_int(const npe_array *a, size_t i)
{
    const unsigned char *p = a->data;
    switch (a->dtype) {
    case NPE_DTYPE_I64: { int64_t v; memcpy(&v, p + i * 8, 8); return v; }
    case NPE_DTYPE_I32: { int32_t v; memcpy(&v, p + i * 4, 4); return v; }
    case NPE_DTYPE_I16: { int16_t v; memcpy(&v, p + i * 2, 2); return v; }
    case NPE_DTYPE_I8: return (int8_t)p[i];
    case NPE_DTYPE_U8: return p[i];
    default: return 0;
    }
}

typedef struct strlist {
    char **v;
    size_t n, cap;
} strlist;

/* Takes ownership of s (freed on failure). */
static int sl_push(strlist *l, char *s)
{
    if (!s)
        return -1;
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 64;
        char **v = realloc(l->v, cap * sizeof(*v));
        if (!v) {
            free(s);
            return -1;
        }
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n++] = s;
    return 0;
}

static void sl_free(strlist *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i]);
    free(l->v);
    memset(l, 0, sizeof(*l));
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void free_strv(char **v, int64_t n)
{
    if (!v)
        return;
    for (int64_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

static int is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* Names in folder path (without "." and ".."), sorted by byte order; want_dirs selects
 * sub-folders (1), non-folders (0). */
static int list_dir(const char *path, int want_dirs, strlist *out, npe_error *err)
{
    DIR *dir = opendir(path);
    if (!dir)
        return npe_error_set(err, NPE_EIO, "%s: cannot open folder: %s", path, strerror(errno));
    int r = 0;
    for (;;) {
        errno = 0; /* readdir's end and its failure differ only by errno */
        struct dirent *e = readdir(dir);
        if (!e)
            break;
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        char *full = join_path(path, e->d_name);
        if (!full) {
            r = npe_error_set(err, NPE_ENOMEM, "%s: out of memory listing the folder", path);
            break;
        }
        int d = is_dir(full);
        free(full);
        if (d != want_dirs)
            continue;
        if (sl_push(out, strdup(e->d_name))) {
            r = npe_error_set(err, NPE_ENOMEM, "%s: out of memory listing the folder", path);
            break;
        }
    }
    if (!r && errno)
        r = npe_error_set(err, NPE_EIO, "%s: cannot read folder: %s", path, strerror(errno));
    closedir(dir);
    if (!r && out->n > 1)
        qsort(out->v, out->n, sizeof(char *), cmp_str);
    return r;
}

/* A file found below a class folder: sorted by the folder it is in, then by name, which is
 * torchvision's sorted(os.walk(...)) then sorted(fnames) order. */
typedef struct walk_entry {
    char *dir, *name;
} walk_entry;

typedef struct walk_list {
    walk_entry *v;
    size_t n, cap;
} walk_list;

static int cmp_walk(const void *a, const void *b)
{
    const walk_entry *x = a, *y = b;
    int c = strcmp(x->dir, y->dir);
    return c ? c : strcmp(x->name, y->name);
}

static int walk_class(const char *dir, int depth, walk_list *wl, npe_error *err)
{
    if (depth > MAX_WALK_DEPTH)
        return npe_error_set(err, NPE_ELIMIT,
                             "%s: folders nested deeper than %d below a class folder (a "
                             "symbolic link loop?)",
                             dir, MAX_WALK_DEPTH);
    strlist files = {0}, subs = {0};
    int r = list_dir(dir, 0, &files, err);
    if (!r)
        r = list_dir(dir, 1, &subs, err);
    for (size_t i = 0; !r && i < files.n; i++) {
        const char *name = files.v[i];
        if (is_unsupported_image_name(name)) {
            r = npe_error_set(err, NPE_EUNSUPPORTED,
                              "%s/%s: TIFF and WebP images are not supported (stb_image reads "
                              "JPEG, PNG, BMP, PPM, PGM); convert them to PNG",
                              dir, name);
            break;
        }
        if (!is_image_name(name))
            continue;
        if (wl->n == wl->cap) {
            size_t cap = wl->cap ? wl->cap * 2 : 256;
            walk_entry *v = realloc(wl->v, cap * sizeof(*v));
            if (!v) {
                r = npe_error_set(err, NPE_ENOMEM, "%s: out of memory listing images", dir);
                break;
            }
            wl->v = v;
            wl->cap = cap;
        }
        walk_entry *e = &wl->v[wl->n];
        e->dir = strdup(dir);
        e->name = strdup(name);
        if (!e->dir || !e->name) {
            free(e->dir);
            free(e->name);
            r = npe_error_set(err, NPE_ENOMEM, "%s: out of memory listing images", dir);
            break;
        }
        wl->n++;
    }
    for (size_t i = 0; !r && i < subs.n; i++) {
        char *sub = join_path(dir, subs.v[i]);
        if (!sub) {
            r = npe_error_set(err, NPE_ENOMEM, "%s: out of memory listing images", dir);
            break;
        }
        r = walk_class(sub, depth + 1, wl, err);
        free(sub);
    }
    sl_free(&files);
    sl_free(&subs);
    return r;
}

static void walk_free(walk_list *wl)
{
    for (size_t i = 0; i < wl->n; i++) {
        free(wl->v[i].dir);
        free(wl->v[i].name);
    }
    free(wl->v);
    memset(wl, 0, sizeof(*wl));
}

/* ---- Images in memory ----------------------------------------------------------------------- */

/* 8-bit pixels, rows of w pixels of c interleaved channels. */
typedef struct u8img {
    int w, h, c;
    unsigned char *px;
} u8img;

/* One class index per pixel. */
typedef struct mask {
    int w, h;
    int32_t *v;
} mask;

/* Decode an image file with stb_image at its own channel count (1 gray, 2 gray+alpha, 3 RGB,
 * 4 RGBA). The header's size is checked before the pixels are allocated. */
static int decode_image(const char *path, u8img *img, npe_error *err)
{
    npe_map m;
    int w, h, comp;
    unsigned char *px = NULL;
    int r = npe_map_file(path, &m, err);
    if (r)
        return r;
    if (!m.data) {
        r = npe_error_set(err, NPE_EFORMAT, "%s: empty file, expected an image", path);
        goto out_unmap;
    }
    if (m.size > INT_MAX) {
        r = npe_error_set(err, NPE_ELIMIT, "%s: %zu bytes, more than an image may have (%d)",
                          path, m.size, INT_MAX);
        goto out_unmap;
    }
    if (!stbi_info_from_memory(m.data, (int)m.size, &w, &h, &comp)) {
        r = npe_error_set(err, NPE_EFORMAT, "%s: unreadable image (%s); expected JPEG, PNG, BMP, "
                          "PPM or PGM", path, stbi_failure_reason());
        goto out_unmap;
    }
    if (w <= 0 || h <= 0 || (int64_t)w * h > MAX_PIXELS) {
        r = npe_error_set(err, NPE_ELIMIT, "%s: image of %dx%d pixels, the limit is %" PRId64
                          " pixels", path, w, h, MAX_PIXELS);
        goto out_unmap;
    }
    px = stbi_load_from_memory(m.data, (int)m.size, &w, &h, &comp, 0);
    if (!px) {
        r = npe_error_set(err, NPE_EFORMAT, "%s: unreadable image (%s)", path,
                          stbi_failure_reason());
        goto out_unmap;
    }
    size_t nb = (size_t)w * h * comp;
    img->px = malloc(nb);
    if (!img->px) {
        r = npe_error_set(err, NPE_ENOMEM, "%s: out of memory for %dx%d pixels", path, w, h);
        goto out_free_px;
    }
    memcpy(img->px, px, nb);
    img->w = w;
    img->h = h;
    img->c = comp;
out_free_px:
    stbi_image_free(px);
out_unmap:
    npe_unmap_file(&m);
    return r;
}

/* Width and height from an image file's header only. */
static int image_header(const char *path, int *w, int *h, npe_error *err)
{
    npe_map m;
    int r = npe_map_file(path, &m, err);
    if (r)
        return r;
    int comp;
    if (!m.data || m.size > INT_MAX ||
        !stbi_info_from_memory(m.data, (int)m.size, w, h, &comp))
        r = npe_error_set(err, NPE_EFORMAT, "%s: unreadable image (%s); expected JPEG, PNG, BMP, "
                          "PPM or PGM", path, m.data ? stbi_failure_reason() : "empty file");
    npe_unmap_file(&m);
    return r;
}

static int load_mask(const char *path, mask *out, npe_error *err)
{
    npe_map m;
    int r = npe_map_file(path, &m, err);
    if (r)
        return r;
    r = npe_label_png_decode(m.data, m.size, path, &out->v, &out->w, &out->h, err);
    npe_unmap_file(&m);
    return r;
}

/* ---- Geometry: PIL's resampling and torchvision's crop --------------------------------------- */

/* Output size of the resize step for an image of w x h (no resize: unchanged). */
static void resized_size(const npe_dataset_opts *o, int w, int h, int *rw, int *rh)
{
    if (o->resize_h > 0) {
        *rw = o->resize_w;
        *rh = o->resize_h;
    } else if (o->resize > 0) {
        /* torchvision: the shorter side becomes size, the longer int(size * long / short). */
        int shorter = w <= h ? w : h, longer = w <= h ? h : w;
        int nl = (int)((double)((int64_t)o->resize * longer) / shorter);
        if (w <= h) {
            *rw = o->resize;
            *rh = nl;
        } else {
            *rw = nl;
            *rh = o->resize;
        }
    } else {
        *rw = w;
        *rh = h;
    }
}

/* Python's round((a - b) / 2) for a >= b: half-way cases go to the even neighbour. */
static int crop_offset(int a, int b)
{
    int d = a - b, q = d / 2;
    if (d % 2 == 0)
        return q;
    return q % 2 == 0 ? q : q + 1;
}

typedef struct coeffs {
    int ksize;
    int *bounds;   /* out x 2: first input index, count */
    int32_t *k;    /* out x ksize fixed-point weights */
} coeffs;

static double triangle(double x)
{
    if (x < 0.0)
        x = -x;
    return x < 1.0 ? 1.0 - x : 0.0;
}

/* PIL's bilinear coefficients for resampling in -> out samples. */
static int pil_coeffs(int in, int out, coeffs *cf)
{
    double scale = (double)in / out, filterscale = scale < 1.0 ? 1.0 : scale;
    double support = filterscale; /* the triangle's support is 1 */
    int ksize = (int)ceil(support) * 2 + 1;
    double *kd = malloc((size_t)out * ksize * sizeof(double));
    cf->bounds = malloc((size_t)out * 2 * sizeof(int));
    cf->k = malloc((size_t)out * ksize * sizeof(int32_t));
    if (!kd || !cf->bounds || !cf->k) {
        free(kd);
        free(cf->bounds);
        free(cf->k);
        cf->bounds = NULL;
        cf->k = NULL;
        return -1;
    }
    cf->ksize = ksize;
    for (int xx = 0; xx < out; xx++) {
        double center = (xx + 0.5) * scale, ww = 0.0, ss = 1.0 / filterscale;
        int xmin = (int)(center - support + 0.5), xmax = (int)(center + support + 0.5);
        if (xmin < 0)
            xmin = 0;
        if (xmax > in)
            xmax = in;
        xmax -= xmin;
        double *k = kd + (size_t)xx * ksize;
        int x = 0;
        for (; x < xmax; x++) {
            k[x] = triangle((x + xmin - center + 0.5) * ss);
            ww += k[x];
        }
        for (x = 0; x < xmax; x++)
            if (ww != 0.0)
                k[x] /= ww;
        for (; x < ksize; x++)
            k[x] = 0.0;
        cf->bounds[2 * xx] = xmin;
        cf->bounds[2 * xx + 1] = xmax;
    }
    for (size_t i = 0; i < (size_t)out * ksize; i++)
        cf->k[i] = kd[i] < 0 ? (int32_t)(-0.5 + kd[i] * (1 << PRECISION_BITS))
                             : (int32_t)(0.5 + kd[i] * (1 << PRECISION_BITS));
    free(kd);
    return 0;
}

static unsigned char clip8(int64_t v)
{
    if (v <= 0)
        return 0;
    v >>= PRECISION_BITS;
    return v > 255 ? 255 : (unsigned char)v;
}

/* One pass along x (horizontal) or y of PIL's separable resample, 8 bits in and out. */
static int resample_pass(const u8img *src, u8img *dst, int horizontal, int out_size)
{
    coeffs cf;
    int in = horizontal ? src->w : src->h;
    if (pil_coeffs(in, out_size, &cf))
        return -1;
    dst->w = horizontal ? out_size : src->w;
    dst->h = horizontal ? src->h : out_size;
    dst->c = src->c;
    dst->px = malloc((size_t)dst->w * dst->h * dst->c);
    if (!dst->px) {
        free(cf.bounds);
        free(cf.k);
        return -1;
    }
    const int c = src->c;
    const size_t sstride = (size_t)src->w * c;
    for (int y = 0; y < dst->h; y++)
        for (int x = 0; x < dst->w; x++) {
            int o = horizontal ? x : y;
            int lo = cf.bounds[2 * o], cnt = cf.bounds[2 * o + 1];
            const int32_t *k = cf.k + (size_t)o * cf.ksize;
            for (int ch = 0; ch < c; ch++) {
                int64_t ss = 1 << (PRECISION_BITS - 1);
                for (int i = 0; i < cnt; i++) {
                    const unsigned char *s =
                        horizontal ? src->px + (size_t)y * sstride + (size_t)(lo + i) * c
                                   : src->px + (size_t)(lo + i) * sstride + (size_t)x * c;
                    ss += (int64_t)s[ch] * k[i];
                }
                dst->px[((size_t)y * dst->w + x) * c + ch] = clip8(ss);
            }
        }
    free(cf.bounds);
    free(cf.k);
    return 0;
}

/* PIL's BILINEAR Image.resize: horizontal pass first, each pass only if its size changes. */
static int resize_bilinear(u8img *img, int ow, int oh)
{
    if (ow != img->w) {
        u8img t;
        if (resample_pass(img, &t, 1, ow))
            return -1;
        free(img->px);
        *img = t;
    }
    if (oh != img->h) {
        u8img t;
        if (resample_pass(img, &t, 0, oh))
            return -1;
        free(img->px);
        *img = t;
    }
    return 0;
}

/* PIL's NEAREST resize of a scale: source index from a position stepped in double. */
static void nearest_table(int in, int out, int *tab)
{
    double s = (double)in / out, pos = s * 0.5;
    for (int i = 0; i < out; i++) {
        int v = pos < 0.0 ? -1 : (int)pos;
        tab[i] = v < 0 ? 0 : v >= in ? in - 1 : v;
        pos += s;
    }
}

static int resize_nearest(mask *m, int ow, int oh)
{
    if (ow == m->w && oh == m->h)
        return 0;
    int *tx = malloc((size_t)ow * sizeof(int)), *ty = malloc((size_t)oh * sizeof(int));
    int32_t *v = malloc((size_t)ow * oh * sizeof(int32_t));
    if (!tx || !ty || !v) {
        free(tx);
        free(ty);
        free(v);
        return -1;
    }
    nearest_table(m->w, ow, tx);
    nearest_table(m->h, oh, ty);
    for (int y = 0; y < oh; y++)
        for (int x = 0; x < ow; x++)
            v[(size_t)y * ow + x] = m->v[(size_t)ty[y] * m->w + tx[x]];
    free(tx);
    free(ty);
    free(m->v);
    m->v = v;
    m->w = ow;
    m->h = oh;
    return 0;
}

static int crop_u8(u8img *img, int top, int left, int ch, int cw)
{
    unsigned char *px = malloc((size_t)ch * cw * img->c);
    if (!px)
        return -1;
    for (int y = 0; y < ch; y++)
        memcpy(px + (size_t)y * cw * img->c,
               img->px + ((size_t)(top + y) * img->w + left) * img->c, (size_t)cw * img->c);
    free(img->px);
    img->px = px;
    img->w = cw;
    img->h = ch;
    return 0;
}

static int crop_mask(mask *m, int top, int left, int ch, int cw)
{
    int32_t *v = malloc((size_t)ch * cw * sizeof(int32_t));
    if (!v)
        return -1;
    for (int y = 0; y < ch; y++)
        memcpy(v + (size_t)y * cw, m->v + (size_t)(top + y) * m->w + left,
               (size_t)cw * sizeof(int32_t));
    free(m->v);
    m->v = v;
    m->w = cw;
    m->h = ch;
    return 0;
}

/* Channels of img to want (1 or 3): alpha dropped, gray replicated, RGB to gray as PIL's
 * convert("L"). */
static int convert_channels(u8img *img, int want)
{
    int c = img->c;
    if (c == want)
        return 0;
    size_t np = (size_t)img->w * img->h;
    unsigned char *px = malloc(np * want);
    if (!px)
        return -1;
    for (size_t i = 0; i < np; i++) {
        const unsigned char *s = img->px + i * c;
        unsigned char *d = px + i * want;
        if (c <= 2) {
            for (int k = 0; k < want; k++)
                d[k] = s[0];
        } else if (want == 3) {
            d[0] = s[0];
            d[1] = s[1];
            d[2] = s[2];
        } else {
            d[0] = (unsigned char)(((uint32_t)s[0] * 19595 + (uint32_t)s[1] * 38470 +
                                    (uint32_t)s[2] * 7471 + 0x8000) >> 16);
        }
    }
    free(img->px);
    img->px = px;
    img->c = want;
    return 0;
}

/* Final size after resize and crop of a w x h image, or an error naming `what`. */
static int final_size(const npe_dataset_opts *o, int w, int h, int *rw, int *rh, int *fw, int *fh,
                      const char *what, npe_error *err)
{
    resized_size(o, w, h, rw, rh);
    if (*rw < 1 || *rh < 1 || (int64_t)*rw * *rh > MAX_PIXELS)
        return npe_error_set(err, NPE_ELIMIT, "%s: resizing %dx%d gives %dx%d (limit %" PRId64
                             " pixels, at least 1x1)", what, w, h, *rw, *rh, MAX_PIXELS);
    *fw = *rw;
    *fh = *rh;
    if (o->crop_h > 0) {
        if (o->crop_h > *rh || o->crop_w > *rw)
            return npe_error_set(err, NPE_EINVAL,
                                 "%s: the %dx%d crop (height x width) is larger than the image, "
                                 "%dx%d after resize",
                                 what, o->crop_h, o->crop_w, *rh, *rw);
        *fw = o->crop_w;
        *fh = o->crop_h;
    }
    return 0;
}

/* Run steps 2-4 of dataset.h on img (and m, when given: nearest resize, same crop), then check
 * the result is the dataset's size. */
static int preprocess(const npe_dataset *d, u8img *img, mask *m, const char *what, npe_error *err)
{
    const npe_dataset_opts *o = &d->o;
    if (m && (m->w != img->w || m->h != img->h))
        return npe_error_set(err, NPE_EINVAL, "%s: label mask is %dx%d (height x width), the "
                             "image %dx%d", what, m->h, m->w, img->h, img->w);
    if (convert_channels(img, d->c))
        return npe_error_set(err, NPE_ENOMEM, "%s: out of memory", what);
    int rw, rh, fw, fh, r = final_size(o, img->w, img->h, &rw, &rh, &fw, &fh, what, err);
    if (r)
        return r;
    if (resize_bilinear(img, rw, rh) || (m && resize_nearest(m, rw, rh)))
        return npe_error_set(err, NPE_ENOMEM, "%s: out of memory resizing to %dx%d", what, rh,
                             rw);
    if (o->crop_h > 0) {
        int top = crop_offset(rh, o->crop_h), left = crop_offset(rw, o->crop_w);
        if (crop_u8(img, top, left, o->crop_h, o->crop_w) ||
            (m && crop_mask(m, top, left, o->crop_h, o->crop_w)))
            return npe_error_set(err, NPE_ENOMEM, "%s: out of memory", what);
    }
    if (img->w != d->w || img->h != d->h)
        return npe_error_set(err, NPE_EINVAL,
                             "%s: image is %dx%d (height x width) after resize/crop, the "
                             "dataset's samples are %dx%d; set resize and crop so every image "
                             "comes out the same size",
                             what, img->h, img->w, d->h, d->w);
    return 0;
}

/* Step 5-6: float32 in the output layout. */
static void emit_u8(const npe_dataset *d, const u8img *img, float *dst)
{
    const int C = d->c;
    const size_t hw = (size_t)img->w * img->h;
    for (int oc = 0; oc < C; oc++) {
        int sc = d->o.bgr ? C - 1 - oc : oc;
        for (size_t p = 0; p < hw; p++) {
            float v = (float)img->px[p * C + sc];
            if (d->o.scale)
                v = v / 255.0f;
            if (d->norm)
                v = (v - d->mean[oc]) / d->std[oc];
            dst[d->o.nhwc ? p * C + oc : oc * hw + p] = v;
        }
    }
}

/* ---- Open ------------------------------------------------------------------------------------ */

static int check_opts(const npe_dataset_opts *o, npe_error *err)
{
    if (o->kind != NPE_DATASET_IMAGEFOLDER && o->kind != NPE_DATASET_IDX &&
        o->kind != NPE_DATASET_NPY)
        return npe_error_set(err, NPE_EINVAL, "dataset: unknown kind %d (expected imagefolder, "
                             "idx or npy)", (int)o->kind);
    if (o->kind == NPE_DATASET_IMAGEFOLDER && !o->root)
        return npe_error_set(err, NPE_EINVAL, "dataset: an imagefolder dataset needs a root "
                             "folder");
    if (o->kind != NPE_DATASET_IMAGEFOLDER && !o->images)
        return npe_error_set(err, NPE_EINVAL, "dataset: an %s dataset needs an images file",
                             kind_name(o->kind));
    if (o->resize < 0 || o->resize > MAX_SIDE || o->resize_h < 0 || o->resize_h > MAX_SIDE ||
        o->resize_w < 0 || o->resize_w > MAX_SIDE || o->crop_h < 0 || o->crop_h > MAX_SIDE ||
        o->crop_w < 0 || o->crop_w > MAX_SIDE || o->height < 0 || o->height > MAX_SIDE ||
        o->width < 0 || o->width > MAX_SIDE)
        return npe_error_set(err, NPE_EINVAL, "dataset: resize, crop, height and width must be "
                             "between 0 (unset) and %d", MAX_SIDE);
    if ((o->resize_h > 0) != (o->resize_w > 0))
        return npe_error_set(err, NPE_EINVAL, "dataset: give both resize height and width, or "
                             "neither");
    if (o->resize_h > 0 && o->resize > 0)
        return npe_error_set(err, NPE_EINVAL, "dataset: resize (shorter side) and an exact "
                             "resize height x width exclude each other");
    if ((o->crop_h > 0) != (o->crop_w > 0))
        return npe_error_set(err, NPE_EINVAL, "dataset: give both crop height and width, or "
                             "neither");
    if ((o->height > 0) != (o->width > 0))
        return npe_error_set(err, NPE_EINVAL, "dataset: give both the expected height and "
                             "width, or neither");
    if (o->channels != 0 && o->channels != 1 && o->channels != 3)
        return npe_error_set(err, NPE_EINVAL, "dataset: channels must be 1 or 3, not %d",
                             o->channels);
    if (o->scale != 0 && o->scale != 1)
        return npe_error_set(err, NPE_EINVAL, "dataset: scale must be 0 or 1, not %d", o->scale);
    if (o->n_norm < 0 || o->n_norm > 3 || o->n_norm == 2)
        return npe_error_set(err, NPE_EINVAL, "dataset: mean/std need 1 value or one per "
                             "channel (3), not %d", o->n_norm);
    for (int i = 0; i < o->n_norm; i++)
        if (!isfinite(o->mean[i]) || !isfinite(o->std[i]) || (float)o->std[i] == 0.0f)
            return npe_error_set(err, NPE_EINVAL, "dataset: mean[%d] = %g, std[%d] = %g: both "
                                 "must be finite and std non-zero", i, o->mean[i], i, o->std[i]);
    if (o->limit < 0)
        return npe_error_set(err, NPE_EINVAL, "dataset: limit must be >= 0 (0: all), not %" PRId64,
                             o->limit);
    if (o->masks && o->kind != NPE_DATASET_IMAGEFOLDER)
        return npe_error_set(err, NPE_EINVAL, "dataset: a masks folder applies to imagefolder "
                             "datasets (for %s, give the masks as the labels file)",
                             kind_name(o->kind));
    if (o->kind == NPE_DATASET_NPY &&
        (o->resize || o->resize_h || o->crop_h || o->channels || o->bgr))
        return npe_error_set(err, NPE_EUNSUPPORTED,
                             "dataset %s: .npy inputs are used as stored: resize, crop, channels "
                             "and bgr apply to image sources (imagefolder, idx); save the array "
                             "preprocessed",
                             o->images);
    return 0;
}

static int open_imagefolder_cls(npe_dataset *d, npe_error *err)
{
    strlist classes = {0};
    walk_list files = {0};
    int r = list_dir(d->root, 1, &classes, err);
    if (r)
        goto out;
    if (classes.n == 0) {
        r = npe_error_set(err, NPE_EFORMAT, "%s: no class folders; an imagefolder dataset is "
                          "root/<class>/<image> (for segmentation, give a masks folder)",
                          d->root);
        goto out;
    }
    if (classes.n > INT_MAX) {
        r = npe_error_set(err, NPE_ELIMIT, "%s: too many class folders", d->root);
        goto out;
    }
    size_t *first = calloc(classes.n + 1, sizeof(size_t));
    if (!first) {
        r = npe_error_set(err, NPE_ENOMEM, "%s: out of memory", d->root);
        goto out;
    }
    for (size_t c = 0; c < classes.n; c++) {
        char *dir = join_path(d->root, classes.v[c]);
        if (!dir) {
            free(first);
            r = npe_error_set(err, NPE_ENOMEM, "%s: out of memory", d->root);
            goto out;
        }
        size_t before = files.n;
        r = walk_class(dir, 0, &files, err);
        if (!r && files.n == before)
            r = npe_error_set(err, NPE_EFORMAT, "%s: class folder without images (.jpg, .jpeg, "
                              ".png, .bmp, .ppm, .pgm)", dir);
        free(dir);
        if (r) {
            free(first);
            goto out;
        }
        qsort(files.v + before, files.n - before, sizeof(walk_entry), cmp_walk);
        first[c + 1] = files.n;
    }
    int64_t n = (int64_t)files.n;
    if (d->o.limit > 0 && d->o.limit < n)
        n = d->o.limit;
    d->files = calloc((size_t)n, sizeof(char *));
    d->file_labels = malloc((size_t)n * sizeof(int64_t));
    d->classes = calloc(classes.n, sizeof(char *));
    if (!d->files || !d->file_labels || !d->classes) {
        free(first);
        r = npe_error_set(err, NPE_ENOMEM, "%s: out of memory", d->root);
        goto out;
    }
    d->n = n;
    d->n_classes = (int)classes.n;
    for (size_t c = 0; c < classes.n; c++) {
        d->classes[c] = classes.v[c];
        classes.v[c] = NULL;
    }
    size_t c = 0;
    for (int64_t i = 0; i < n; i++) {
        while ((size_t)i >= first[c + 1])
            c++;
        d->file_labels[i] = (int64_t)c;
        d->files[i] = join_path(files.v[i].dir, files.v[i].name);
        if (!d->files[i]) {
            free(first);
            r = npe_error_set(err, NPE_ENOMEM, "%s: out of memory", d->root);
            goto out;
        }
    }
    free(first);
    d->target = NPE_TARGET_LABELS;
out:
    sl_free(&classes);
    walk_free(&files);
    return r;
}

static int open_imagefolder_seg(npe_dataset *d, npe_error *err)
{
    strlist names = {0};
    int r = list_dir(d->root, 0, &names, err);
    if (r)
        goto out;
    if (!is_dir(d->masks)) {
        r = npe_error_set(err, NPE_EIO, "%s: masks folder not found", d->masks);
        goto out;
    }
    size_t k = 0;
    for (size_t i = 0; i < names.n; i++) {
        if (is_unsupported_image_name(names.v[i])) {
            r = npe_error_set(err, NPE_EUNSUPPORTED,
                              "%s/%s: TIFF and WebP images are not supported (stb_image reads "
                              "JPEG, PNG, BMP, PPM, PGM); convert them to PNG",
                              d->root, names.v[i]);
            goto out;
        }
        if (is_image_name(names.v[i]))
            names.v[k++] = names.v[i];
        else
            free(names.v[i]);
    }
    names.n = k;
    if (k == 0) {
        r = npe_error_set(err, NPE_EFORMAT, "%s: no images (.jpg, .jpeg, .png, .bmp, .ppm, "
                          ".pgm) in the folder", d->root);
        goto out;
    }
    int64_t n = (int64_t)k;
    if (d->o.limit > 0 && d->o.limit < n)
        n = d->o.limit;
    d->files = calloc((size_t)n, sizeof(char *));
    d->mask_files = calloc((size_t)n, sizeof(char *));
    if (!d->files || !d->mask_files) {
        r = npe_error_set(err, NPE_ENOMEM, "%s: out of memory", d->root);
        goto out;
    }
    d->n = n;
    for (int64_t i = 0; i < n; i++) {
        const char *name = names.v[i];
        const char *dot = strrchr(name, '.');
        size_t stem = (size_t)(dot - name);
        char *mname = malloc(stem + 5);
        if (!mname) {
            r = npe_error_set(err, NPE_ENOMEM, "%s: out of memory", d->root);
            goto out;
        }
        memcpy(mname, name, stem);
        memcpy(mname + stem, ".png", 5);
        d->files[i] = join_path(d->root, name);
        d->mask_files[i] = join_path(d->masks, mname);
        free(mname);
        if (!d->files[i] || !d->mask_files[i]) {
            r = npe_error_set(err, NPE_ENOMEM, "%s: out of memory", d->root);
            goto out;
        }
        struct stat st;
        if (stat(d->mask_files[i], &st) != 0 || !S_ISREG(st.st_mode)) {
            r = npe_error_set(err, NPE_EIO, "%s: label mask of %s not found (masks are "
                              "<masks>/<image stem>.png)", d->mask_files[i], d->files[i]);
            goto out;
        }
    }
    d->target = NPE_TARGET_MASKS;
out:
    sl_free(&names);
    return r;
}

static int open_imagefolder(npe_dataset *d, npe_error *err)
{
    struct stat st;
    if (stat(d->root, &st) != 0)
        return npe_error_set(err, NPE_EIO, "%s: dataset folder not found: %s", d->root,
                             strerror(errno));
    if (!S_ISDIR(st.st_mode))
        return npe_error_set(err, NPE_EINVAL, "%s: an imagefolder dataset's root must be a "
                             "folder", d->root);
    int r = d->masks ? open_imagefolder_seg(d, err) : open_imagefolder_cls(d, err);
    if (r)
        return r;
    d->image_source = 1;
    d->c = d->o.channels ? d->o.channels : 3;
    int w, h;
    if ((r = image_header(d->files[0], &w, &h, err)))
        return r;
    int rw, rh;
    return final_size(&d->o, w, h, &rw, &rh, &d->w, &d->h, d->files[0], err);
}

static int open_labels(npe_dataset *d, int64_t n_images, npe_error *err)
{
    const char *path = d->labels_path;
    int r = d->o.kind == NPE_DATASET_IDX ? npe_idx_load(path, &d->lab, err)
                                         : npe_npy_load(path, &d->lab, err);
    if (r)
        return r;
    if (!is_integer_dtype(d->lab.dtype))
        return npe_error_set(err, NPE_EFORMAT, "%s: labels must be integers, found %s", path,
                             npe_dtype_name(d->lab.dtype));
    if (d->lab.ndim == 1) {
        d->target = NPE_TARGET_LABELS;
    } else if (d->lab.ndim == 3 && d->o.kind == NPE_DATASET_NPY) {
        d->target = NPE_TARGET_MASKS;
        d->th = d->lab.shape[1];
        d->tw = d->lab.shape[2];
    } else {
        return npe_error_set(err, NPE_EFORMAT, "%s: labels have %d dimensions; expected [N] "
                             "class labels%s", path, d->lab.ndim,
                             d->o.kind == NPE_DATASET_NPY ? " or [N,H,W] masks" : "");
    }
    if (d->lab.shape[0] != n_images)
        return npe_error_set(err, NPE_EINVAL, "%s: %" PRId64 " labels for %" PRId64 " images "
                             "in %s", path, d->lab.shape[0], n_images, d->images_path);
    return 0;
}

static int open_idx(npe_dataset *d, npe_error *err)
{
    int r = npe_idx_load(d->images_path, &d->in, err);
    if (r)
        return r;
    const npe_array *a = &d->in;
    if (a->dtype != NPE_DTYPE_U8 || (a->ndim != 3 && a->ndim != 4) ||
        (a->ndim == 4 && a->shape[3] != 1 && a->shape[3] != 3))
        return npe_error_set(err, NPE_EFORMAT, "%s: expected uint8 images [N,H,W] or [N,H,W,C] "
                             "with C = 1 or 3, found %s with %d dimensions", d->images_path,
                             npe_dtype_name(a->dtype), a->ndim);
    if (a->shape[0] < 1 || a->shape[1] < 1 || a->shape[2] < 1 ||
        a->shape[1] * a->shape[2] > MAX_PIXELS)
        return npe_error_set(err, NPE_EFORMAT, "%s: %" PRId64 " images of %" PRId64 "x%" PRId64
                             " pixels: need at least one image of at most %" PRId64 " pixels",
                             d->images_path, a->shape[0], a->shape[1], a->shape[2], MAX_PIXELS);
    d->src_c = a->ndim == 4 ? (int)a->shape[3] : 1;
    if (d->labels_path && (r = open_labels(d, a->shape[0], err)))
        return r;
    d->n = a->shape[0];
    if (d->o.limit > 0 && d->o.limit < d->n)
        d->n = d->o.limit;
    d->image_source = 1;
    d->c = d->o.channels ? d->o.channels : d->src_c;
    int rw, rh;
    return final_size(&d->o, (int)a->shape[2], (int)a->shape[1], &rw, &rh, &d->w, &d->h,
                      d->images_path, err);
}

static int open_npy(npe_dataset *d, npe_error *err)
{
    int r = npe_npy_load(d->images_path, &d->in, err);
    if (r)
        return r;
    npe_array *a = &d->in;
    if (a->dtype != NPE_DTYPE_F32 && a->dtype != NPE_DTYPE_F64 && a->dtype != NPE_DTYPE_U8)
        return npe_error_set(err, NPE_EUNSUPPORTED, "%s: inputs must be float32, float64 or "
                             "uint8, found %s", d->images_path, npe_dtype_name(a->dtype));
    if (a->ndim < 1 || a->shape[0] < 1)
        return npe_error_set(err, NPE_EFORMAT, "%s: inputs must be [N,...] with N >= 1",
                             d->images_path);
    if (a->dtype == NPE_DTYPE_F64) {
        /* Converted once here so reads are copies. */
        int64_t numel = npe_array_numel(a);
        float *f = malloc((size_t)numel * sizeof(float) + 1);
        if (!f)
            return npe_error_set(err, NPE_ENOMEM, "%s: out of memory", d->images_path);
        const double *s = a->data;
        for (int64_t i = 0; i < numel; i++)
            f[i] = (float)s[i];
        free(a->data);
        a->data = f;
        a->dtype = NPE_DTYPE_F32;
        a->nbytes = (size_t)numel * sizeof(float);
    }
    if (d->o.n_norm) {
        int cdim = d->o.nhwc ? a->ndim - 1 : 1;
        if (a->ndim < 2 || (d->o.n_norm != 1 && a->shape[cdim] != d->o.n_norm))
            return npe_error_set(err, NPE_EINVAL, "%s: mean/std have %d values but the inputs' "
                                 "channel dimension (%s) has %" PRId64, d->images_path,
                                 d->o.n_norm, d->o.nhwc ? "last" : "1",
                                 a->ndim < 2 ? (int64_t)0 : a->shape[cdim]);
    }
    if (d->labels_path && (r = open_labels(d, a->shape[0], err)))
        return r;
    d->n = a->shape[0];
    if (d->o.limit > 0 && d->o.limit < d->n)
        d->n = d->o.limit;
    d->sample_ndim = a->ndim - 1;
    for (int i = 1; i < a->ndim; i++)
        d->sample_shape[i - 1] = a->shape[i];
    if (d->o.height > 0) {
        /* The model's input size against images stored [N,C,H,W] (or [N,H,W,C]). */
        if (a->ndim != 4)
            return npe_error_set(err, NPE_EINVAL, "%s: inputs have %d dimensions, expected "
                                 "images [N,C,H,W] (or [N,H,W,C]) of %dx%d (the model's input)",
                                 d->images_path, a->ndim, d->o.height, d->o.width);
        int64_t h = a->shape[d->o.nhwc ? 1 : 2], w = a->shape[d->o.nhwc ? 2 : 3];
        if (h != d->o.height || w != d->o.width)
            return npe_error_set(err, NPE_EINVAL, "%s: images are %" PRId64 "x%" PRId64
                                 " (height x width), expected %dx%d (the model's input)",
                                 d->images_path, h, w, d->o.height, d->o.width);
    }
    return 0;
}

static char *dup_opt(const char *s, int *fail)
{
    if (!s)
        return NULL;
    char *c = strdup(s);
    if (!c)
        *fail = 1;
    return c;
}

/* ---- Callback sources ------------------------------------------------------------------------- */

static int check_shape(const npe_shape *s, int min_ndim, int max_ndim, const char *what,
                       npe_error *err)
{
    if (s->ndim < min_ndim || s->ndim > max_ndim)
        return npe_error_set(err, NPE_EINVAL, "data source: %s has %d dims (%d to %d allowed)",
                             what, s->ndim, min_ndim, max_ndim);
    for (int i = 0; i < s->ndim; i++)
        if (s->d[i] < 1 || s->d[i] > ((int64_t)1 << 31))
            return npe_error_set(err, NPE_EINVAL, "data source: %s dim %d is %" PRId64
                                 " (1 to 2^31 allowed)", what, i, s->d[i]);
    return 0;
}

static int open_callback(const npe_dataset_opts *o, npe_dataset **out, npe_error *err)
{
    const npe_data_source *s = o->source;
    if (!s)
        return npe_error_set(err, NPE_EINVAL, "dataset: a callback dataset needs a data source");
    if (!s->read)
        return npe_error_set(err, NPE_EINVAL, "data source: the read callback is NULL");
    if (s->n_samples < 1)
        return npe_error_set(err, NPE_EINVAL, "data source: n_samples is %" PRId64 " (>= 1 "
                             "needed)", s->n_samples);
    if (o->resize || o->resize_h || o->crop_h || o->channels || o->bgr || o->nhwc ||
        o->n_norm || o->root || o->images || o->labels || o->masks)
        return npe_error_set(err, NPE_EINVAL, "dataset: files and preprocessing options do not "
                             "apply to a data source (its read callback preprocesses)");
    if (o->limit < 0)
        return npe_error_set(err, NPE_EINVAL, "dataset: limit must be >= 0 (0: all), not %" PRId64,
                             o->limit);
    int r = check_shape(&s->sample_shape, 1, NPE_MAX_DIMS - 1, "sample_shape", err);
    if (r)
        return r;
    if (s->has_targets) {
        if ((unsigned)s->target_dtype >= NPE_DTYPE_COUNT)
            return npe_error_set(err, NPE_EINVAL, "data source: target_dtype %d is no dtype",
                                 (int)s->target_dtype);
        if ((r = check_shape(&s->target_shape, 0, NPE_MAX_DIMS - 1, "target_shape", err)))
            return r;
    }
    int64_t snumel = 1, tnumel = 1;
    for (int i = 0; i < s->sample_shape.ndim; i++)
        snumel *= s->sample_shape.d[i];
    for (int i = 0; s->has_targets && i < s->target_shape.ndim; i++)
        tnumel *= s->target_shape.d[i];
    if (snumel > ((int64_t)1 << 31) || tnumel > ((int64_t)1 << 31))
        return npe_error_set(err, NPE_ELIMIT, "data source: one sample has %" PRId64 " input "
                             "and %" PRId64 " target values (2^31 at most)", snumel, tnumel);
    npe_dataset *d = calloc(1, sizeof(*d));
    if (!d)
        return npe_error_set(err, NPE_ENOMEM, "dataset: out of memory");
    if (pthread_mutex_init(&d->lock, NULL)) {
        free(d);
        return npe_error_set(err, NPE_ENOMEM, "dataset: cannot create a mutex");
    }
    d->o = *o;
    d->src = s;
    d->n = o->limit > 0 && o->limit < s->n_samples ? o->limit : s->n_samples;
    d->sample_ndim = s->sample_shape.ndim;
    memcpy(d->sample_shape, s->sample_shape.d, sizeof(d->sample_shape));
    d->target = NPE_TARGET_NONE;
    if (s->has_targets) {
        d->tndim = s->target_shape.ndim;
        memcpy(d->tshape, s->target_shape.d, sizeof(d->tshape));
        int integral = is_integer_dtype(s->target_dtype);
        if (integral && d->tndim == 0) {
            d->target = NPE_TARGET_LABELS;
        } else if (integral && d->tndim == 2) {
            d->target = NPE_TARGET_MASKS;
            d->th = d->tshape[0];
            d->tw = d->tshape[1];
        } else {
            d->target = NPE_TARGET_OTHER;
        }
    }
    *out = d;
    return 0;
}

/* Integer targets become int64 (what the built-in metrics read). */
static void widen_targets(const npe_array *raw, npe_array *out)
{
    int64_t n = npe_array_numel(raw);
    int64_t *dst = out->data;
    for (int64_t i = 0; i < n; i++)
        dst[i] = get_int(raw, (size_t)i);
}

static int read_callback(const npe_dataset *d, int64_t start, int64_t n, npe_array *inputs,
                         npe_array *targets, npe_error *err)
{
    const npe_data_source *s = d->src;
    int64_t snumel = 1, tnumel = 1;
    for (int i = 0; i < d->sample_ndim; i++)
        snumel *= d->sample_shape[i];
    for (int i = 0; i < d->tndim; i++)
        tnumel *= d->tshape[i];
    size_t tsize = s->has_targets ? npe_dtype_size(s->target_dtype) : 0;
    if (n > (int64_t)(SIZE_MAX / 16) / (snumel > tnumel ? snumel : tnumel))
        return npe_error_set(err, NPE_ELIMIT, "data source: a batch of %" PRId64 " samples is "
                             "too large", n);
    npe_array in = {0}, raw = {0};
    in.dtype = NPE_DTYPE_F32;
    in.ndim = d->sample_ndim + 1;
    in.shape[0] = n;
    memcpy(in.shape + 1, d->sample_shape, (size_t)d->sample_ndim * sizeof(int64_t));
    in.nbytes = (size_t)(n * snumel) * sizeof(float);
    in.data = calloc(in.nbytes ? in.nbytes : 1, 1);
    int r = 0;
    if (s->has_targets) {
        raw.dtype = s->target_dtype;
        raw.ndim = d->tndim + 1;
        raw.shape[0] = n;
        memcpy(raw.shape + 1, d->tshape, (size_t)d->tndim * sizeof(int64_t));
        raw.nbytes = (size_t)(n * tnumel) * tsize;
        raw.data = calloc(raw.nbytes ? raw.nbytes : 1, 1);
    }
    if (!in.data || (s->has_targets && !raw.data)) {
        r = npe_error_set(err, NPE_ENOMEM, "data source: out of memory for a batch of %" PRId64,
                          n);
        goto out_fail;
    }
    npe_tensor ti, tt;
    memset(&ti, 0, sizeof(ti));
    memset(&tt, 0, sizeof(tt));
    ti.dtype = in.dtype;
    ti.ndim = in.ndim;
    memcpy(ti.shape, in.shape, sizeof(ti.shape));
    ti.data = in.data;
    ti.nbytes = in.nbytes;
    if (s->has_targets) {
        tt.dtype = raw.dtype;
        tt.ndim = raw.ndim;
        memcpy(tt.shape, raw.shape, sizeof(tt.shape));
        tt.data = raw.data;
        tt.nbytes = raw.nbytes;
    }
    char msg[512] = "";
    if (!s->concurrent)
        pthread_mutex_lock((pthread_mutex_t *)&d->lock);
    int rc = s->read(s->user, start, n, &ti, s->has_targets ? &tt : NULL, msg, sizeof(msg));
    if (!s->concurrent)
        pthread_mutex_unlock((pthread_mutex_t *)&d->lock);
    msg[sizeof(msg) - 1] = '\0';
    if (rc) {
        int code = rc < 0 && rc >= NPE_ECALLBACK ? rc : NPE_ECALLBACK;
        if (msg[0])
            r = npe_error_set(err, code, "data source: reading samples %" PRId64 "..%" PRId64
                              " failed: %s", start, start + n - 1, msg);
        else
            r = npe_error_set(err, code, "data source: reading samples %" PRId64 "..%" PRId64
                              " failed (returned %d)", start, start + n - 1, rc);
        goto out_fail;
    }
    if (ti.data != in.data || ti.nbytes != in.nbytes || ti.ndim != in.ndim ||
        ti.dtype != in.dtype || memcmp(ti.shape, in.shape, sizeof(ti.shape)) ||
        (s->has_targets && (tt.data != raw.data || tt.nbytes != raw.nbytes ||
                            tt.ndim != raw.ndim || tt.dtype != raw.dtype ||
                            memcmp(tt.shape, raw.shape, sizeof(tt.shape))))) {
        r = npe_error_set(err, NPE_ECALLBACK, "data source: reading samples %" PRId64 "..%" PRId64
                          ": the read callback changed the tensors it was given (fill data, "
                          "change nothing else)", start, start + n - 1);
        goto out_fail;
    }
    *inputs = in;
    if (!targets || !s->has_targets) {
        npe_array_free(&raw);
        return 0;
    }
    if (d->target == NPE_TARGET_OTHER || raw.dtype == NPE_DTYPE_I64) {
        *targets = raw;
        return 0;
    }
    /* labels and masks of a narrower integer type, widened for the built-in metrics */
    npe_array w = raw;
    w.dtype = NPE_DTYPE_I64;
    w.nbytes = (size_t)(n * tnumel) * sizeof(int64_t);
    if (!(w.data = malloc(w.nbytes ? w.nbytes : 1))) {
        r = npe_error_set(err, NPE_ENOMEM, "data source: out of memory for a batch of %" PRId64,
                          n);
        memset(inputs, 0, sizeof(*inputs));
        goto out_fail;
    }
    widen_targets(&raw, &w);
    npe_array_free(&raw);
    *targets = w;
    return 0;
out_fail:
    npe_array_free(&in);
    npe_array_free(&raw);
    return r;
}

int npe_dataset_open(const npe_dataset_opts *o, npe_dataset **out, npe_error *err)
{
    *out = NULL;
    if (o->kind == NPE_DATASET_CALLBACK)
        return open_callback(o, out, err);
    int r = check_opts(o, err);
    if (r)
        return r;
    npe_dataset *d = calloc(1, sizeof(*d));
    if (!d)
        return npe_error_set(err, NPE_ENOMEM, "dataset: out of memory");
    d->o = *o;
    int fail = 0;
    d->root = dup_opt(o->root, &fail);
    d->masks = dup_opt(o->masks, &fail);
    d->images_path = dup_opt(o->images, &fail);
    d->labels_path = dup_opt(o->labels, &fail);
    d->o.root = d->root;
    d->o.masks = d->masks;
    d->o.images = d->images_path;
    d->o.labels = d->labels_path;
    if (fail) {
        r = npe_error_set(err, NPE_ENOMEM, "dataset: out of memory");
        goto out_destroy;
    }
    switch (o->kind) {
    case NPE_DATASET_IMAGEFOLDER: r = open_imagefolder(d, err); break;
    case NPE_DATASET_IDX: r = open_idx(d, err); break;
    case NPE_DATASET_NPY: r = open_npy(d, err); break;
    case NPE_DATASET_CALLBACK: break; /* opened by open_callback */
    }
    if (r)
        goto out_destroy;
    const char *where = d->root ? d->root : d->images_path;
    if (d->image_source) {
        if (o->bgr && d->c != 3) {
            r = npe_error_set(err, NPE_EINVAL, "%s: bgr needs 3 channels, the inputs have %d",
                              where, d->c);
            goto out_destroy;
        }
        if (o->height > 0 && (o->height != d->h || o->width != d->w)) {
            r = npe_error_set(err, NPE_EINVAL,
                              "%s: samples are %dx%d (height x width) after resize/crop, "
                              "expected %dx%d (the model's input)",
                              d->image_source && d->files ? d->files[0] : where, d->h, d->w,
                              o->height, o->width);
            goto out_destroy;
        }
        if (o->n_norm > 1 && o->n_norm != d->c) {
            r = npe_error_set(err, NPE_EINVAL, "%s: mean/std have %d values for %d channels",
                              where, o->n_norm, d->c);
            goto out_destroy;
        }
        d->sample_ndim = 3;
        int64_t s[3] = {d->c, d->h, d->w};
        if (o->nhwc) {
            s[0] = d->h;
            s[1] = d->w;
            s[2] = d->c;
        }
        memcpy(d->sample_shape, s, sizeof(s));
        if (d->target == NPE_TARGET_MASKS) {
            d->th = d->h;
            d->tw = d->w;
        }
    }
    d->norm = o->n_norm > 0;
    for (int i = 0; i < 3; i++) {
        int j = o->n_norm == 1 ? 0 : i;
        d->mean[i] = (float)o->mean[j];
        d->std[i] = (float)o->std[j];
    }
    *out = d;
    return 0;
out_destroy:
    npe_dataset_destroy(d);
    return r;
}

void npe_dataset_destroy(npe_dataset *d)
{
    if (!d)
        return;
    if (d->src)
        pthread_mutex_destroy(&d->lock);
    free_strv(d->files, d->n);
    free_strv(d->mask_files, d->n);
    free_strv(d->classes, d->n_classes);
    free(d->file_labels);
    npe_array_free(&d->in);
    npe_array_free(&d->lab);
    free(d->root);
    free(d->masks);
    free(d->images_path);
    free(d->labels_path);
    free(d);
}

void npe_dataset_get_info(const npe_dataset *d, npe_dataset_info *out)
{
    memset(out, 0, sizeof(*out));
    out->size = d->n;
    out->sample_ndim = d->sample_ndim;
    memcpy(out->sample_shape, d->sample_shape, sizeof(out->sample_shape));
    out->target = d->target;
    if (d->target == NPE_TARGET_MASKS) {
        out->target_shape[0] = d->th;
        out->target_shape[1] = d->tw;
    }
    out->num_classes = d->n_classes;
}

const char *npe_dataset_class_name(const npe_dataset *d, int i)
{
    return d->classes && i >= 0 && i < d->n_classes ? d->classes[i] : NULL;
}

const char *npe_dataset_sample_path(const npe_dataset *d, int64_t i)
{
    return d->files && i >= 0 && i < d->n ? d->files[i] : NULL;
}

/* ---- Read ------------------------------------------------------------------------------------ */

/* Sample i of an image source, preprocessed, into dst (and its mask into tdst). */
static int read_image_sample(const npe_dataset *d, int64_t i, float *dst, int64_t *tdst,
                             npe_error *err)
{
    u8img img = {0};
    mask m = {0};
    char what[96];
    const char *name;
    int r;
    if (d->files) {
        name = d->files[i];
        if ((r = decode_image(name, &img, err)))
            return r;
        if (tdst && d->mask_files && (r = load_mask(d->mask_files[i], &m, err)))
            goto out;
    } else {
        const npe_array *a = &d->in;
        snprintf(what, sizeof(what), "image %" PRId64, i);
        name = what;
        img.h = (int)a->shape[1];
        img.w = (int)a->shape[2];
        img.c = d->src_c;
        size_t nb = (size_t)img.w * img.h * img.c;
        img.px = malloc(nb);
        if (!img.px) {
            r = npe_error_set(err, NPE_ENOMEM, "%s: out of memory", d->images_path);
            goto out;
        }
        memcpy(img.px, (const unsigned char *)a->data + (size_t)i * nb, nb);
    }
    if ((r = preprocess(d, &img, m.v ? &m : NULL, name, err))) {
        if (!d->files)
            npe_error_prefix(err, "%s", d->images_path);
        goto out;
    }
    emit_u8(d, &img, dst);
    if (m.v)
        for (size_t p = 0; p < (size_t)m.w * m.h; p++)
            tdst[p] = m.v[p];
out:
    free(img.px);
    free(m.v);
    return r;
}

int npe_dataset_read(const npe_dataset *d, int64_t start, int64_t n, npe_array *inputs,
                     npe_array *targets, npe_error *err)
{
    memset(inputs, 0, sizeof(*inputs));
    if (targets)
        memset(targets, 0, sizeof(*targets));
    if (start < 0 || n < 1 || start > d->n || n > d->n - start)
        return npe_error_set(err, NPE_EINVAL, "dataset: samples [%" PRId64 ", %" PRId64 ") "
                             "asked, the dataset has %" PRId64, start, start + n, d->n);
    if (d->src)
        return read_callback(d, start, n, inputs, targets, err);
    int64_t snumel = 1;
    for (int i = 0; i < d->sample_ndim; i++)
        snumel *= d->sample_shape[i];
    if (snumel > 0 && n > (int64_t)(SIZE_MAX / sizeof(float) / 2) / snumel)
        return npe_error_set(err, NPE_ELIMIT, "dataset: a batch of %" PRId64 " samples of %"
                             PRId64 " values is too large", n, snumel);
    int r = 0;
    inputs->dtype = NPE_DTYPE_F32;
    inputs->ndim = d->sample_ndim + 1;
    inputs->shape[0] = n;
    for (int i = 0; i < d->sample_ndim; i++)
        inputs->shape[i + 1] = d->sample_shape[i];
    inputs->nbytes = (size_t)(n * snumel) * sizeof(float);
    inputs->data = malloc(inputs->nbytes ? inputs->nbytes : 1);
    int64_t tnumel = 0;
    if (targets && d->target != NPE_TARGET_NONE) {
        tnumel = d->target == NPE_TARGET_MASKS ? d->th * d->tw : 1;
        targets->dtype = NPE_DTYPE_I64;
        targets->ndim = d->target == NPE_TARGET_MASKS ? 3 : 1;
        targets->shape[0] = n;
        targets->shape[1] = d->th;
        targets->shape[2] = d->tw;
        if (targets->ndim == 1)
            targets->shape[1] = targets->shape[2] = 0;
        targets->nbytes = (size_t)(n * tnumel) * sizeof(int64_t);
        targets->data = malloc(targets->nbytes ? targets->nbytes : 1);
        if (!targets->data) {
            r = npe_error_set(err, NPE_ENOMEM, "dataset: out of memory for a batch of %" PRId64,
                              n);
            goto out_fail;
        }
    }
    if (!inputs->data) {
        r = npe_error_set(err, NPE_ENOMEM, "dataset: out of memory for a batch of %" PRId64, n);
        goto out_fail;
    }
    float *in = inputs->data;
    int64_t *tg = targets ? targets->data : NULL;
    for (int64_t k = 0; k < n; k++) {
        int64_t i = start + k;
        float *dst = in + k * snumel;
        int64_t *tdst = tg ? tg + k * tnumel : NULL;
        if (d->image_source) {
            if ((r = read_image_sample(d, i, dst, d->target == NPE_TARGET_MASKS ? tdst : NULL,
                                       err)))
                goto out_fail;
        } else if (d->in.dtype == NPE_DTYPE_F32) {
            memcpy(dst, (const float *)d->in.data + i * snumel, (size_t)snumel * sizeof(float));
        } else { /* uint8 */
            const unsigned char *s = (const unsigned char *)d->in.data + i * snumel;
            for (int64_t j = 0; j < snumel; j++)
                dst[j] = d->o.scale ? (float)s[j] / 255.0f : (float)s[j];
        }
        if (!d->image_source && d->norm) {
            /* Channel dimension: sample dim 0 (stored NCHW) or the last (NHWC). */
            int64_t C = d->o.nhwc ? d->sample_shape[d->sample_ndim - 1] : d->sample_shape[0];
            int64_t inner = 1;
            if (!d->o.nhwc)
                for (int j = 1; j < d->sample_ndim; j++)
                    inner *= d->sample_shape[j];
            for (int64_t j = 0; j < snumel; j++) {
                int64_t c = d->o.nhwc ? j % C : (j / inner) % C;
                dst[j] = (dst[j] - d->mean[c % 3]) / d->std[c % 3];
            }
        }
        if (tdst && d->target == NPE_TARGET_LABELS)
            tdst[0] = d->files ? d->file_labels[i] : get_int(&d->lab, (size_t)i);
        else if (tdst && d->target == NPE_TARGET_MASKS && !d->image_source)
            for (int64_t j = 0; j < tnumel; j++)
                tdst[j] = get_int(&d->lab, (size_t)(i * tnumel + j));
    }
    return 0;
out_fail:
    npe_array_free(inputs);
    if (targets)
        npe_array_free(targets);
    return r;
}
