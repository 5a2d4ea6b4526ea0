/* Datasets against independent references: Fashion-MNIST IDX batches against the formula and
 * torchvision, the same images as a PNG ImageFolder, torchvision/PIL preprocessing of RGB and
 * segmentation folders, .npy inputs, hand-computed resize/crop cases, errors, threads.
 * Usage: test_dataset REFS_DIR [FASHION_MNIST_DIR]   (REFS_DIR from tests/gen_data_refs.py) */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <sys/stat.h>

#include "../engine/dataset.h"
#include "fileio.h"
#include "idx.h"
#include "npy.h"
#include "testutil.h"

static const char *refs;
static char work[2048];
/* Paths options keep pointing at (rp's buffers rotate). */
static char rgb_root[2048], seg_images[2048], seg_masks[2048];

static char *rp(const char *name) /* path under REFS_DIR (static buffer, 4 in rotation) */
{
    static char buf[4][4096];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof(buf[k]), "%s/%s", refs, name);
    return buf[k];
}

static char *wp(const char *name) /* path under the work folder */
{
    static char buf[4][4096];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof(buf[k]), "%s/%s", work, name);
    return buf[k];
}

static int load_npy(const char *path, npe_array *a)
{
    npe_error e = {0};
    int r = npe_npy_load(path, a, &e);
    CHECK_MSG(r == 0, "%s", e.msg);
    return r;
}

/* Bitwise equality of two float32 arrays of the same shape; prints the first mismatches. */
static void check_same_f32(const npe_array *got, const npe_array *want, const char *what)
{
    CHECK_MSG(got->dtype == NPE_DTYPE_F32 && want->dtype == NPE_DTYPE_F32, "%s: dtypes", what);
    int same_shape = got->ndim == want->ndim;
    for (int i = 0; same_shape && i < got->ndim; i++)
        same_shape = got->shape[i] == want->shape[i];
    CHECK_MSG(same_shape, "%s: shapes differ (ndim %d vs %d; dim0 %lld vs %lld)", what,
              got->ndim, want->ndim, (long long)got->shape[0], (long long)want->shape[0]);
    if (!same_shape)
        return;
    int64_t n = npe_array_numel(got), bad = 0;
    const float *g = got->data, *w = want->data;
    double maxd = 0;
    for (int64_t i = 0; i < n; i++) {
        if (memcmp(&g[i], &w[i], sizeof(float)) != 0) {
            if (bad < 5)
                fprintf(stderr, "%s: element %lld: got %.9g, want %.9g\n", what, (long long)i,
                        g[i], w[i]);
            bad++;
            double d = fabs((double)g[i] - w[i]);
            if (d > maxd)
                maxd = d;
        }
    }
    CHECK_MSG(bad == 0, "%s: %lld of %lld values differ, max |diff| %g", what, (long long)bad,
              (long long)n, maxd);
}

static void check_same_i64(const npe_array *got, const npe_array *want, const char *what)
{
    int ok = got->dtype == NPE_DTYPE_I64 && want->dtype == NPE_DTYPE_I64 &&
             got->ndim == want->ndim && npe_array_numel(got) == npe_array_numel(want);
    for (int i = 0; ok && i < got->ndim; i++)
        ok = got->shape[i] == want->shape[i];
    CHECK_MSG(ok, "%s: dtype/shape differ", what);
    if (!ok)
        return;
    int64_t n = npe_array_numel(got), bad = 0;
    const int64_t *g = got->data, *w = want->data;
    for (int64_t i = 0; i < n; i++)
        if (g[i] != w[i]) {
            if (bad < 5)
                fprintf(stderr, "%s: element %lld: got %lld, want %lld\n", what, (long long)i,
                        (long long)g[i], (long long)w[i]);
            bad++;
        }
    CHECK_MSG(bad == 0, "%s: %lld of %lld values differ", what, (long long)bad, (long long)n);
}

static npe_dataset *open_ok(const npe_dataset_opts *o, const char *what)
{
    npe_dataset *d = NULL;
    npe_error e = {0};
    int r = npe_dataset_open(o, &d, &e);
    CHECK_MSG(r == 0, "%s: open failed: %s", what, e.msg);
    return d;
}

static int read_ok(const npe_dataset *d, int64_t start, int64_t n, npe_array *x, npe_array *y,
                   const char *what)
{
    npe_error e = {0};
    int r = npe_dataset_read(d, start, n, x, y, &e);
    CHECK_MSG(r == 0, "%s: read [%lld, +%lld) failed: %s", what, (long long)start, (long long)n,
              e.msg);
    return r;
}

/* Expect open (or, if open succeeds, reading everything) to fail with code and a message
 * holding each of the given fragments. */
static void expect_error(const npe_dataset_opts *o, int code, const char *what, const char *frag1,
                         const char *frag2)
{
    npe_dataset *d = NULL;
    npe_error e = {0};
    int r = npe_dataset_open(o, &d, &e);
    if (r == 0) {
        npe_dataset_info info;
        npe_dataset_get_info(d, &info);
        npe_array x, y;
        r = npe_dataset_read(d, 0, info.size, &x, &y, &e);
        if (r == 0) {
            npe_array_free(&x);
            npe_array_free(&y);
        }
        CHECK_MSG(x.data == NULL && y.data == NULL, "%s: outputs not zeroed on failure", what);
        npe_dataset_destroy(d);
    }
    CHECK_MSG(r == code, "%s: expected error %d, got %d (%s)", what, code, r, e.msg);
    CHECK_MSG(frag1 == NULL || strstr(e.msg, frag1), "%s: message lacks '%s': %s", what, frag1,
              e.msg);
    CHECK_MSG(frag2 == NULL || strstr(e.msg, frag2), "%s: message lacks '%s': %s", what, frag2,
              e.msg);
    if (r == code && getenv("VERBOSE"))
        printf("  %s -> %s\n", what, e.msg);
}

/* A plain IDX file of uint8 with the given dimensions. */
static void write_idx_u8(const char *path, const int *dims, int ndim, const unsigned char *data)
{
    FILE *f = fopen(path, "wb");
    CHECK_MSG(f != NULL, "cannot write %s", path);
    if (!f)
        return;
    unsigned char head[4] = {0, 0, 0x08, (unsigned char)ndim};
    fwrite(head, 1, 4, f);
    size_t n = 1;
    for (int i = 0; i < ndim; i++) {
        unsigned char b[4] = {(unsigned char)(dims[i] >> 24), (unsigned char)(dims[i] >> 16),
                              (unsigned char)(dims[i] >> 8), (unsigned char)dims[i]};
        fwrite(b, 1, 4, f);
        n *= (size_t)dims[i];
    }
    fwrite(data, 1, n, f);
    fclose(f);
}

/* ---- Fashion-MNIST: IDX and the same images as PNGs ------------------------------------------ */

static void test_fashion(const char *fdir)
{
    char images[4096], labels[4096];
    snprintf(images, sizeof(images), "%s/t10k-images-idx3-ubyte.gz", fdir);
    snprintf(labels, sizeof(labels), "%s/t10k-labels-idx1-ubyte.gz", fdir);
    const float mean = 0.2860f, std = 0.3530f;

    npe_dataset_opts o;
    npe_dataset_opts_init(&o);
    o.kind = NPE_DATASET_IDX;
    o.images = images;
    o.labels = labels;
    o.n_norm = 1;
    o.mean[0] = 0.2860;
    o.std[0] = 0.3530;
    npe_dataset *full = open_ok(&o, "fashion idx");
    if (!full)
        return;
    npe_dataset_info info;
    npe_dataset_get_info(full, &info);
    CHECK_EQ_INT(info.size, 10000);
    CHECK_EQ_INT(info.sample_ndim, 3);
    CHECK(info.sample_shape[0] == 1 && info.sample_shape[1] == 28 && info.sample_shape[2] == 28);
    CHECK_EQ_INT(info.target, NPE_TARGET_LABELS);

    /* Independently: the raw bytes through the formula torchvision applies. */
    npe_array raw = {0}, rawl = {0};
    npe_error e = {0};
    CHECK_MSG(npe_idx_load(images, &raw, &e) == 0, "%s", e.msg);
    CHECK_MSG(npe_idx_load(labels, &rawl, &e) == 0, "%s", e.msg);
    npe_array x, y;
    if (raw.data && rawl.data && !read_ok(full, 0, 32, &x, &y, "fashion first batch")) {
        CHECK(x.ndim == 4 && x.shape[0] == 32 && x.shape[1] == 1 && x.shape[2] == 28 &&
              x.shape[3] == 28);
        const unsigned char *px = raw.data;
        const float *xv = x.data;
        int bad = 0;
        for (int i = 0; i < 32 * 784; i++) {
            float want = ((float)px[i] / 255.0f - mean) / std;
            bad += memcmp(&want, &xv[i], 4) != 0;
        }
        CHECK_MSG(bad == 0, "fashion: %d values differ from (x/255 - mean)/std", bad);
        const unsigned char *lv = rawl.data;
        for (int i = 0; i < 32; i++)
            CHECK_EQ_INT(((int64_t *)y.data)[i], lv[i]);
        npe_array_free(&x);
        npe_array_free(&y);
    }
    /* The last batch of the file, unaligned. */
    if (raw.data && !read_ok(full, 9990, 10, &x, NULL, "fashion last batch")) {
        const unsigned char *px = (const unsigned char *)raw.data + 9990 * 784;
        int bad = 0;
        for (int i = 0; i < 10 * 784; i++) {
            float want = ((float)px[i] / 255.0f - mean) / std;
            bad += memcmp(&want, &((float *)x.data)[i], 4) != 0;
        }
        CHECK_MSG(bad == 0, "fashion last batch: %d values differ", bad);
        npe_array_free(&x);
    }
    /* torchvision's ToTensor + Normalize on PIL images of the first 16. */
    npe_array ref = {0}, refl = {0};
    if (!load_npy(rp("fmnist_ref.npy"), &ref) && !load_npy(rp("fmnist_ref_labels.npy"), &refl) &&
        !read_ok(full, 0, 16, &x, &y, "fashion 16")) {
        check_same_f32(&x, &ref, "fashion vs torchvision");
        check_same_i64(&y, &refl, "fashion labels vs torchvision");
        npe_array_free(&x);
        npe_array_free(&y);
    }
    npe_array_free(&ref);
    npe_array_free(&refl);

    /* limit = 100 for the comparison with the PNG folder. */
    o.limit = 100;
    npe_dataset *idx = open_ok(&o, "fashion idx limit 100");
    npe_dataset_opts f;
    npe_dataset_opts_init(&f);
    f.kind = NPE_DATASET_IMAGEFOLDER;
    f.root = rp("fmnist_png");
    f.channels = 1;
    f.n_norm = 1;
    f.mean[0] = 0.2860;
    f.std[0] = 0.3530;
    f.height = f.width = 28;
    npe_dataset *pngs = open_ok(&f, "fashion png folder");
    if (idx && pngs) {
        npe_dataset_info a, b;
        npe_dataset_get_info(idx, &a);
        npe_dataset_get_info(pngs, &b);
        CHECK_EQ_INT(a.size, 100);
        CHECK_EQ_INT(b.size, 100);
        CHECK_EQ_INT(b.num_classes, 10);
        CHECK_STR(npe_dataset_class_name(pngs, 3), "3");
        CHECK(memcmp(a.sample_shape, b.sample_shape, sizeof(a.sample_shape)) == 0);
        npe_array xi, yi;
        if (!read_ok(idx, 0, 100, &xi, &yi, "idx 100")) {
            int bad = 0, badl = 0;
            /* The folder is grouped by class: find each file's index in its name. Batches of
             * 7 leave a remainder of 2. */
            for (int64_t s = 0; s < 100; s += 7) {
                int64_t n = s + 7 <= 100 ? 7 : 100 - s;
                npe_array xp, yp;
                if (read_ok(pngs, s, n, &xp, &yp, "png batch"))
                    break;
                for (int64_t k = 0; k < n; k++) {
                    const char *p = npe_dataset_sample_path(pngs, s + k);
                    const char *base = strrchr(p, '/');
                    int index = atoi(base + 1);
                    bad += memcmp((float *)xp.data + k * 784, (float *)xi.data + index * 784,
                                  784 * sizeof(float)) != 0;
                    badl += ((int64_t *)yp.data)[k] != ((int64_t *)yi.data)[index];
                }
                npe_array_free(&xp);
                npe_array_free(&yp);
            }
            CHECK_MSG(bad == 0, "%d PNG samples differ from the IDX samples", bad);
            CHECK_MSG(badl == 0, "%d PNG labels differ from the IDX labels", badl);
            npe_array_free(&xi);
            npe_array_free(&yi);
        }
    }
    npe_dataset_destroy(idx);
    npe_dataset_destroy(pngs);
    npe_dataset_destroy(full);
    npe_array_free(&raw);
    npe_array_free(&rawl);
}

/* ---- RGB folder: torchvision's ImageFolder with each transform variant ----------------------- */

static void rgb_opts(npe_dataset_opts *o, char v)
{
    npe_dataset_opts_init(o);
    o->kind = NPE_DATASET_IMAGEFOLDER;
    o->root = rgb_root;
    if (v == 'a') { /* Resize(24), CenterCrop((20, 22)), ToTensor, Normalize(ImageNet) */
        o->resize = 24;
        o->crop_h = 20;
        o->crop_w = 22;
        o->n_norm = 3;
        const double m[3] = {0.485, 0.456, 0.406}, s[3] = {0.229, 0.224, 0.225};
        memcpy(o->mean, m, sizeof(m));
        memcpy(o->std, s, sizeof(s));
    } else if (v == 'b') { /* Grayscale(1), Resize((17, 31)), ToTensor */
        o->channels = 1;
        o->resize_h = 17;
        o->resize_w = 31;
    } else { /* Resize(60), CenterCrop(50), ToTensor: upsampling */
        o->resize = 60;
        o->crop_h = o->crop_w = 50;
    }
}

static void test_rgb_folder(void)
{
    npe_array labels = {0};
    load_npy(rp("rgb_labels.npy"), &labels);
    char order[16][128];
    int n_order = 0;
    FILE *f = fopen(rp("rgb_files.txt"), "r");
    CHECK(f != NULL);
    while (f && n_order < 16 && fgets(order[n_order], sizeof(order[0]), f)) {
        order[n_order][strcspn(order[n_order], "\n")] = 0;
        n_order++;
    }
    if (f)
        fclose(f);
    for (char v = 'a'; v <= 'c'; v++) {
        npe_dataset_opts o;
        rgb_opts(&o, v);
        char what[64], name[64];
        snprintf(what, sizeof(what), "rgb variant %c", v);
        npe_dataset *d = open_ok(&o, what);
        if (!d)
            continue;
        npe_dataset_info info;
        npe_dataset_get_info(d, &info);
        CHECK_EQ_INT(info.size, n_order);
        CHECK_EQ_INT(info.num_classes, 3);
        CHECK_STR(npe_dataset_class_name(d, 0), "Zebra");
        CHECK_STR(npe_dataset_class_name(d, 2), "dog");
        for (int i = 0; i < n_order && i < info.size; i++) {
            const char *p = npe_dataset_sample_path(d, i);
            size_t lr = strlen(rgb_root) + 1;
            CHECK_MSG(strlen(p) > lr && strcmp(p + lr, order[i]) == 0,
                      "sample %d is %s, torchvision has %s", i, p, order[i]);
        }
        npe_array ref = {0}, x, y;
        snprintf(name, sizeof(name), "rgb_%c.npy", v);
        if (!load_npy(rp(name), &ref) && !read_ok(d, 0, info.size, &x, &y, what)) {
            check_same_f32(&x, &ref, what);
            check_same_i64(&y, &labels, what);
            npe_array_free(&x);
            npe_array_free(&y);
        }
        npe_dataset_destroy(d);
        if (v == 'a' && ref.data) {
            /* BGR + NHWC: the same values, channels reversed (so mean/std given reversed) and
             * moved last. */
            o.bgr = 1;
            o.nhwc = 1;
            const double m[3] = {0.406, 0.456, 0.485}, s[3] = {0.225, 0.224, 0.229};
            memcpy(o.mean, m, sizeof(m));
            memcpy(o.std, s, sizeof(s));
            d = open_ok(&o, "rgb bgr nhwc");
            if (d && !read_ok(d, 0, info.size, &x, NULL, "rgb bgr nhwc")) {
                CHECK(x.ndim == 4 && x.shape[1] == 20 && x.shape[2] == 22 && x.shape[3] == 3);
                int bad = 0;
                const float *g = x.data, *w = ref.data;
                for (int64_t s0 = 0; s0 < info.size; s0++)
                    for (int c = 0; c < 3; c++)
                        for (int p = 0; p < 20 * 22; p++)
                            bad += memcmp(&g[(s0 * 440 + p) * 3 + (2 - c)],
                                          &w[(s0 * 3 + c) * 440 + p], 4) != 0;
                CHECK_MSG(bad == 0, "bgr/nhwc: %d values differ", bad);
                npe_array_free(&x);
            }
            npe_dataset_destroy(d);
        }
        npe_array_free(&ref);
    }
    npe_array_free(&labels);
}

/* ---- Concurrent reads share one dataset ------------------------------------------------------ */

typedef struct job {
    const npe_dataset *d;
    int64_t start, n;
    npe_array x, y;
    int rc;
} job;

static void *run_job(void *arg)
{
    job *j = arg;
    for (int rep = 0; rep < 5; rep++) {
        if (rep)
            npe_array_free(&j->x), npe_array_free(&j->y);
        j->rc = npe_dataset_read(j->d, j->start, j->n, &j->x, &j->y, NULL);
        if (j->rc)
            break;
    }
    return NULL;
}

static void test_threads(void)
{
    npe_dataset_opts o;
    rgb_opts(&o, 'a');
    npe_dataset *d = open_ok(&o, "threads");
    npe_array ref = {0};
    if (!d || load_npy(rp("rgb_a.npy"), &ref))
        goto out;
    job jobs[4];
    pthread_t th[4];
    for (int t = 0; t < 4; t++) {
        jobs[t] = (job){.d = d, .start = t, .n = 4};
        CHECK(pthread_create(&th[t], NULL, run_job, &jobs[t]) == 0);
    }
    for (int t = 0; t < 4; t++) {
        pthread_join(th[t], NULL);
        CHECK_EQ_INT(jobs[t].rc, 0);
        if (!jobs[t].rc)
            CHECK(memcmp(jobs[t].x.data, (float *)ref.data + jobs[t].start * 3 * 440,
                         4 * 3 * 440 * sizeof(float)) == 0);
        npe_array_free(&jobs[t].x);
        npe_array_free(&jobs[t].y);
    }
out:
    npe_array_free(&ref);
    npe_dataset_destroy(d);
}

/* ---- Segmentation folder --------------------------------------------------------------------- */

static void seg_opts(npe_dataset_opts *o)
{
    npe_dataset_opts_init(o);
    o->kind = NPE_DATASET_IMAGEFOLDER;
    o->root = seg_images;
    o->masks = seg_masks;
}

static void test_seg_folder(void)
{
    for (char v = 'a'; v <= 'b'; v++) {
        npe_dataset_opts o;
        seg_opts(&o);
        if (v == 'a') { /* Resize(16), CenterCrop((14, 15)), Normalize((0.5,), (0.25,)) */
            o.resize = 16;
            o.crop_h = 14;
            o.crop_w = 15;
            o.n_norm = 1;
            o.mean[0] = 0.5;
            o.std[0] = 0.25;
        } else { /* Resize((13, 9)) */
            o.resize_h = 13;
            o.resize_w = 9;
        }
        char what[64], n1[64], n2[64];
        snprintf(what, sizeof(what), "seg variant %c", v);
        snprintf(n1, sizeof(n1), "seg_%c_inputs.npy", v);
        snprintf(n2, sizeof(n2), "seg_%c_masks.npy", v);
        npe_dataset *d = open_ok(&o, what);
        npe_array rx = {0}, ry = {0}, x, y;
        if (d && !load_npy(rp(n1), &rx) && !load_npy(rp(n2), &ry)) {
            npe_dataset_info info;
            npe_dataset_get_info(d, &info);
            CHECK_EQ_INT(info.size, 4);
            CHECK_EQ_INT(info.target, NPE_TARGET_MASKS);
            CHECK(info.target_shape[0] == ry.shape[1] && info.target_shape[1] == ry.shape[2]);
            if (!read_ok(d, 0, 4, &x, &y, what)) {
                check_same_f32(&x, &rx, what);
                check_same_i64(&y, &ry, what);
                npe_array_free(&x);
                npe_array_free(&y);
            }
        }
        npe_array_free(&rx);
        npe_array_free(&ry);
        npe_dataset_destroy(d);
    }
    /* PIL's NEAREST at many scales, on s0's mask (the first sample). */
    FILE *f = fopen(rp("seg_nearest.txt"), "r");
    CHECK(f != NULL);
    int ow, oh;
    char fn[128];
    while (f && fscanf(f, "%d %d %127s", &ow, &oh, fn) == 3) {
        npe_dataset_opts o;
        seg_opts(&o);
        o.limit = 1;
        o.resize_h = oh;
        o.resize_w = ow;
        npe_dataset *d = open_ok(&o, fn);
        npe_array ref = {0}, x, y;
        if (d && !load_npy(rp(fn), &ref) && !read_ok(d, 0, 1, &x, &y, fn)) {
            y.ndim = 2; /* [1,H,W] against [H,W] */
            y.shape[0] = y.shape[1];
            y.shape[1] = y.shape[2];
            check_same_i64(&y, &ref, fn);
            npe_array_free(&x);
            npe_array_free(&y);
        }
        npe_array_free(&ref);
        npe_dataset_destroy(d);
    }
    if (f)
        fclose(f);
}

/* The label-PNG decoder against PIL (the generator asserted PIL reads back what it wrote), and
 * every truncation and many corruptions refused without a bad access. */
static void test_label_png(void)
{
    const char *names[] = {"s0", "s1", "s2", "s3"};
    npe_array ry = {0};
    load_npy(rp("seg_b_masks.npy"), &ry); /* only for the value range */
    for (int i = 0; i < 4; i++) {
        char p[128];
        snprintf(p, sizeof(p), "seg/masks/%s.png", names[i]);
        char *buf = NULL;
        size_t size = 0;
        npe_error e = {0};
        if (npe_read_file(rp(p), 1 << 20, &buf, &size, &e)) {
            CHECK_MSG(0, "%s", e.msg);
            continue;
        }
        int32_t *v = NULL;
        int w = 0, h = 0;
        CHECK_MSG(npe_label_png_decode(buf, size, p, &v, &w, &h, &e) == 0, "%s", e.msg);
        int maxv = 0;
        for (int k = 0; v && k < w * h; k++)
            maxv = v[k] > maxv ? v[k] : maxv;
        CHECK_MSG(i == 3 ? maxv == 3 : i == 2 ? maxv <= 15 : maxv == 255, "%s: max %d", p, maxv);
        free(v);
        for (size_t cut = 0; cut < size; cut++) {
            int r = npe_label_png_decode(buf, cut, p, &v, &w, &h, NULL);
            CHECK_MSG(r != 0 && v == NULL, "%s truncated to %zu bytes accepted", p, cut);
        }
        uint32_t seed = 12345;
        for (int k = 0; k < 2000; k++) {
            char *m = malloc(size);
            memcpy(m, buf, size);
            for (int flips = 0; flips < 1 + k % 4; flips++) {
                seed = seed * 1103515245u + 12345u;
                m[(seed >> 8) % size] ^= (char)(1 + (seed >> 20) % 255);
            }
            if (npe_label_png_decode(m, size, p, &v, &w, &h, NULL) == 0) {
                CHECK(v != NULL && w > 0 && h > 0);
                free(v);
            }
            free(m);
        }
        free(buf);
    }
    npe_array_free(&ry);
}

static void test_jpeg(void)
{
    npe_dataset_opts o;
    npe_dataset_opts_init(&o);
    o.root = rp("jpg");
    npe_dataset *d = open_ok(&o, "jpeg");
    npe_array ref = {0}, x;
    if (d && !load_npy(rp("jpg_ref.npy"), &ref) && !read_ok(d, 0, 2, &x, NULL, "jpeg")) {
        CHECK(npe_array_numel(&x) == npe_array_numel(&ref));
        double maxd = 0, sum = 0;
        int64_t n = npe_array_numel(&x);
        for (int64_t i = 0; i < n; i++) {
            double dd = fabs((double)((float *)x.data)[i] - ((float *)ref.data)[i]) * 255;
            sum += dd;
            maxd = dd > maxd ? dd : maxd;
        }
        /* stb_image's IDCT and chroma upsampling are not libjpeg's: close, not equal. */
        CHECK_MSG(maxd <= 12 && sum / n <= 1.5, "jpeg: max diff %g levels, mean %g", maxd,
                  sum / n);
        if (getenv("VERBOSE"))
            printf("  jpeg vs PIL: max diff %g levels, mean %g\n", maxd, sum / n);
        npe_array_free(&x);
    }
    npe_array_free(&ref);
    npe_dataset_destroy(d);
}

/* ---- Hand-computed resize, crop and channel cases -------------------------------------------- */

static float *read_raw(npe_dataset_opts *o, const char *what, npe_array *x)
{
    npe_dataset *d = open_ok(o, what);
    float *v = NULL;
    if (d && !read_ok(d, 0, 1, x, NULL, what))
        v = x->data;
    npe_dataset_destroy(d);
    return v;
}

static void test_hand_cases(void)
{
    npe_dataset_opts o;
    npe_array x;
    float *v;
    /* 4x4, p(y, x) = 70x + 7y, to 2x2. PIL's triangle filter widened 2x: weights 3/7, 3/7, 1/7
     * and 1/7, 3/7, 3/7, so the rows give 50 + 7y and 160 + 7y, then the columns
     * 50*3/7 + 57*3/7 + 64/7 = 55 and 57/7 + 64*3/7 + 71*3/7 = 66 (and +110 on the right). */
    unsigned char g[16];
    for (int y = 0; y < 4; y++)
        for (int xx = 0; xx < 4; xx++)
            g[y * 4 + xx] = (unsigned char)(70 * xx + 7 * y);
    write_idx_u8(wp("g4.idx"), (const int[]){1, 4, 4}, 3, g);
    npe_dataset_opts_init(&o);
    o.kind = NPE_DATASET_IDX;
    o.images = wp("g4.idx");
    o.scale = 0;
    o.resize_h = o.resize_w = 2;
    if ((v = read_raw(&o, "downscale 4->2", &x))) {
        CHECK(v[0] == 55 && v[1] == 165 && v[2] == 66 && v[3] == 176);
        npe_array_free(&x);
    }
    /* Shorter side: the 4x4 image to 3 (no change of aspect): 4 -> 3 both ways. */
    /* Crop 3x3 of 4x4: (4-3)/2 = 0.5 rounds to 0 (half to even). */
    o.resize_h = o.resize_w = 0;
    o.crop_h = o.crop_w = 3;
    if ((v = read_raw(&o, "crop 4->3", &x))) {
        CHECK(v[0] == 0 && v[1] == 70 && v[2] == 140 && v[3] == 7 && v[8] == 154);
        npe_array_free(&x);
    }
    /* 1x2 [0, 200] to 1x4: upsampling keeps the triangle's support 1: [0, 50, 150, 200]. */
    write_idx_u8(wp("u2.idx"), (const int[]){1, 1, 2}, 3, (const unsigned char[]){0, 200});
    npe_dataset_opts_init(&o);
    o.kind = NPE_DATASET_IDX;
    o.images = wp("u2.idx");
    o.scale = 0;
    o.resize_h = 1;
    o.resize_w = 4;
    if ((v = read_raw(&o, "upscale 2->4", &x))) {
        CHECK(v[0] == 0 && v[1] == 50 && v[2] == 150 && v[3] == 200);
        npe_array_free(&x);
    }
    /* 7x7 of 0..48, crop 2x2: (7-2)/2 = 2.5 rounds to 2 (half-up would say 3): rows/cols 2-3. */
    unsigned char s7[49], s5[25];
    for (int i = 0; i < 49; i++)
        s7[i] = (unsigned char)i;
    for (int i = 0; i < 25; i++)
        s5[i] = (unsigned char)i;
    write_idx_u8(wp("s7.idx"), (const int[]){1, 7, 7}, 3, s7);
    write_idx_u8(wp("s5.idx"), (const int[]){1, 5, 5}, 3, s5);
    npe_dataset_opts_init(&o);
    o.kind = NPE_DATASET_IDX;
    o.images = wp("s7.idx");
    o.scale = 0;
    o.crop_h = o.crop_w = 2;
    if ((v = read_raw(&o, "crop 7->2", &x))) {
        CHECK(v[0] == 16 && v[1] == 17 && v[2] == 23 && v[3] == 24);
        npe_array_free(&x);
    }
    /* 5x5 crop 2x2: 1.5 rounds to 2. */
    o.images = wp("s5.idx");
    if ((v = read_raw(&o, "crop 5->2", &x))) {
        CHECK(v[0] == 12 && v[1] == 13 && v[2] == 17 && v[3] == 18);
        npe_array_free(&x);
    }
    /* Shorter side 2 of a 4x6 (h x w) image: 2 x int(2*6/4) = 2x3. */
    unsigned char r46[24] = {0};
    write_idx_u8(wp("r46.idx"), (const int[]){1, 4, 6}, 3, r46);
    npe_dataset_opts_init(&o);
    o.kind = NPE_DATASET_IDX;
    o.images = wp("r46.idx");
    o.resize = 2;
    npe_dataset *d = open_ok(&o, "resize shorter side");
    if (d) {
        npe_dataset_info info;
        npe_dataset_get_info(d, &info);
        CHECK(info.sample_shape[0] == 1 && info.sample_shape[1] == 2 &&
              info.sample_shape[2] == 3);
        npe_dataset_destroy(d);
    }
    /* RGB -> gray with PIL's weights: (255,0,0) -> (255*19595 + 32768) >> 16 = 76,
     * (10,200,30) -> (195950 + 7694000 + 224130 + 32768) >> 16 = 124. Gray -> RGB replicates.
     * BGR reverses. */
    write_idx_u8(wp("rgb2.idx"), (const int[]){1, 1, 2, 3}, 4,
                 (const unsigned char[]){255, 0, 0, 10, 200, 30});
    npe_dataset_opts_init(&o);
    o.kind = NPE_DATASET_IDX;
    o.images = wp("rgb2.idx");
    o.scale = 0;
    o.channels = 1;
    if ((v = read_raw(&o, "rgb to gray", &x))) {
        CHECK(v[0] == 76 && v[1] == 124);
        npe_array_free(&x);
    }
    o.channels = 0;
    o.bgr = 1;
    if ((v = read_raw(&o, "bgr", &x))) { /* NCHW: B plane, G plane, R plane */
        CHECK(v[0] == 0 && v[1] == 30 && v[2] == 0 && v[3] == 200 && v[4] == 255 && v[5] == 10);
        npe_array_free(&x);
    }
    o.images = wp("u2.idx");
    o.bgr = 0;
    o.channels = 3;
    o.nhwc = 1;
    if ((v = read_raw(&o, "gray to rgb", &x))) {
        CHECK(x.ndim == 4 && x.shape[3] == 3);
        CHECK(v[0] == 0 && v[2] == 0 && v[3] == 200 && v[5] == 200);
        npe_array_free(&x);
    }
}

/* ---- .npy inputs ----------------------------------------------------------------------------- */

static void save_npy(const char *path, npe_dtype t, int ndim, const int64_t *shape, void *data)
{
    npe_array a = {.dtype = t, .ndim = ndim, .data = data};
    memcpy(a.shape, shape, (size_t)ndim * sizeof(int64_t));
    a.nbytes = (size_t)npe_array_numel(&a) * npe_dtype_size(t);
    npe_error e = {0};
    CHECK_MSG(npe_npy_save(path, &a, &e) == 0, "%s", e.msg);
}

static void test_npy(void)
{
    /* float32 [5,3,2,2] + int64 labels: used as stored, normalised on dim 1. */
    float f[60];
    int64_t lab[5] = {4, 0, 2, 2, 1};
    for (int i = 0; i < 60; i++)
        f[i] = (float)i * 0.25f - 3.0f;
    save_npy(wp("f.npy"), NPE_DTYPE_F32, 4, (const int64_t[]){5, 3, 2, 2}, f);
    save_npy(wp("l.npy"), NPE_DTYPE_I64, 1, (const int64_t[]){5}, lab);
    npe_dataset_opts o;
    npe_dataset_opts_init(&o);
    o.kind = NPE_DATASET_NPY;
    o.images = wp("f.npy");
    o.labels = wp("l.npy");
    o.n_norm = 3;
    const double m[3] = {0.5, -1, 2}, s[3] = {2, 0.5, 4};
    memcpy(o.mean, m, sizeof(m));
    memcpy(o.std, s, sizeof(s));
    npe_dataset *d = open_ok(&o, "npy f32");
    npe_array x, y;
    if (d && !read_ok(d, 1, 4, &x, &y, "npy f32")) {
        CHECK(x.ndim == 4 && x.shape[0] == 4 && x.shape[1] == 3 && x.shape[3] == 2);
        int bad = 0;
        for (int i = 0; i < 48; i++) {
            int c = (i / 4) % 3;
            float want = (f[12 + i] - (float)m[c]) / (float)s[c];
            bad += memcmp(&want, &((float *)x.data)[i], 4) != 0;
        }
        CHECK_MSG(bad == 0, "npy f32: %d values differ", bad);
        for (int i = 0; i < 4; i++)
            CHECK_EQ_INT(((int64_t *)y.data)[i], lab[1 + i]);
        npe_array_free(&x);
        npe_array_free(&y);
    }
    npe_dataset_destroy(d);
    /* The model's input size: 2x2 fits, 4x4 does not. */
    o.height = o.width = 2;
    d = open_ok(&o, "npy 2x2");
    npe_dataset_destroy(d);
    o.height = o.width = 4;
    expect_error(&o, NPE_EINVAL, "npy size vs model", "f.npy", "2x2");
    o.height = o.width = 0;
    /* The same stored NHWC: channel = last dimension. */
    save_npy(wp("fh.npy"), NPE_DTYPE_F32, 4, (const int64_t[]){5, 2, 2, 3}, f);
    o.images = wp("fh.npy");
    o.nhwc = 1;
    d = open_ok(&o, "npy nhwc");
    if (d && !read_ok(d, 0, 5, &x, NULL, "npy nhwc")) {
        int bad = 0;
        for (int i = 0; i < 60; i++) {
            float want = (f[i] - (float)m[i % 3]) / (float)s[i % 3];
            bad += memcmp(&want, &((float *)x.data)[i], 4) != 0;
        }
        CHECK_MSG(bad == 0, "npy nhwc: %d values differ", bad);
        npe_array_free(&x);
    }
    npe_dataset_destroy(d);
    /* uint8 [6,2,3] scaled, uint8 masks [6,2,3], limit 4. */
    unsigned char u[36], mk[36];
    for (int i = 0; i < 36; i++) {
        u[i] = (unsigned char)(i * 7);
        mk[i] = (unsigned char)(i % 5 == 0 ? 255 : i % 3);
    }
    save_npy(wp("u.npy"), NPE_DTYPE_U8, 3, (const int64_t[]){6, 2, 3}, u);
    save_npy(wp("m.npy"), NPE_DTYPE_U8, 3, (const int64_t[]){6, 2, 3}, mk);
    npe_dataset_opts_init(&o);
    o.kind = NPE_DATASET_NPY;
    o.images = wp("u.npy");
    o.labels = wp("m.npy");
    o.limit = 4;
    d = open_ok(&o, "npy u8");
    if (d) {
        npe_dataset_info info;
        npe_dataset_get_info(d, &info);
        CHECK_EQ_INT(info.size, 4);
        CHECK_EQ_INT(info.target, NPE_TARGET_MASKS);
        CHECK(info.sample_ndim == 2 && info.sample_shape[0] == 2 && info.sample_shape[1] == 3);
        if (!read_ok(d, 0, 4, &x, &y, "npy u8")) {
            int bad = 0;
            for (int i = 0; i < 24; i++) {
                float want = (float)u[i] / 255.0f;
                bad += memcmp(&want, &((float *)x.data)[i], 4) != 0;
                bad += ((int64_t *)y.data)[i] != mk[i];
            }
            CHECK_MSG(bad == 0, "npy u8: %d values differ", bad);
            CHECK(y.ndim == 3 && y.shape[1] == 2 && y.shape[2] == 3);
            npe_array_free(&x);
            npe_array_free(&y);
        }
        npe_array_free(&x);
        npe_error e = {0};
        CHECK_EQ_INT(npe_dataset_read(d, 3, 2, &x, &y, &e), NPE_EINVAL); /* past the limit */
        npe_dataset_destroy(d);
    }
    /* Image options are refused for .npy. */
    o.resize = 8;
    expect_error(&o, NPE_EUNSUPPORTED, "npy resize", "u.npy", "used as stored");
}

/* ---- Errors ---------------------------------------------------------------------------------- */

static void test_errors(const char *fdir)
{
    npe_dataset_opts o;
    npe_dataset_opts_init(&o);
    o.kind = NPE_DATASET_IDX;
    o.images = "/nonexistent/t10k-images.gz";
    expect_error(&o, NPE_EIO, "missing idx", "/nonexistent/t10k-images.gz", NULL);
    npe_dataset_opts_init(&o);
    o.root = "/nonexistent/folder";
    expect_error(&o, NPE_EIO, "missing folder", "/nonexistent/folder", "not found");
    o.root = rp("err_size");
    expect_error(&o, NPE_EINVAL, "image of another size", "b.png", "28x28");
    o.root = rp("err_bad");
    expect_error(&o, NPE_EFORMAT, "corrupt png", "b.png", "unreadable image");
    /* The model's input size against the dataset's. */
    rgb_opts(&o, 'a');
    o.height = o.width = 28;
    expect_error(&o, NPE_EINVAL, "size vs model", "20x22", "28x28");
    rgb_opts(&o, 'a');
    o.crop_h = 40;
    expect_error(&o, NPE_EINVAL, "crop too large", "crop", "larger than the image");
    rgb_opts(&o, 'a');
    o.channels = 2;
    expect_error(&o, NPE_EINVAL, "channels 2", "channels", NULL);
    rgb_opts(&o, 'b');
    o.bgr = 1;
    expect_error(&o, NPE_EINVAL, "bgr on gray", "bgr", NULL);
    rgb_opts(&o, 'a');
    o.std[1] = 0;
    expect_error(&o, NPE_EINVAL, "std 0", "std", NULL);
    seg_opts(&o);
    o.masks = rp("rgb");
    expect_error(&o, NPE_EIO, "missing mask", "s0.png", "not found");
    /* A corrupt label PNG is named. */
    mkdir(wp("segbad"), 0755);
    mkdir(wp("segbad/img"), 0755);
    mkdir(wp("segbad/msk"), 0755);
    char *buf = NULL;
    size_t size = 0;
    if (!npe_read_file(rp("seg/images/s1.png"), 1 << 20, &buf, &size, NULL)) {
        FILE *f = fopen(wp("segbad/img/a.png"), "wb");
        fwrite(buf, 1, size, f);
        fclose(f);
        free(buf);
    }
    if (!npe_read_file(rp("seg/masks/s1.png"), 1 << 20, &buf, &size, NULL)) {
        FILE *f = fopen(wp("segbad/msk/a.png"), "wb");
        fwrite(buf, 1, size - 20, f); /* truncated */
        fclose(f);
        free(buf);
    }
    npe_dataset_opts_init(&o);
    o.root = wp("segbad/img");
    o.masks = wp("segbad/msk");
    expect_error(&o, NPE_EFORMAT, "truncated mask", "segbad/msk/a.png", NULL);
    /* An RGB PNG as a label mask. */
    o.masks = rp("seg/images");
    o.root = rp("seg/images");
    expect_error(&o, NPE_EUNSUPPORTED, "rgb mask", "s0.png", "RGB");
    /* Labels that do not match the images. */
    write_idx_u8(wp("l3.idx"), (const int[]){3}, 1, (const unsigned char[]){1, 2, 3});
    write_idx_u8(wp("i2.idx"), (const int[]){2, 2, 2}, 3, (const unsigned char[8]){0});
    npe_dataset_opts_init(&o);
    o.kind = NPE_DATASET_IDX;
    o.images = wp("i2.idx");
    o.labels = wp("l3.idx");
    expect_error(&o, NPE_EINVAL, "label count", "l3.idx", "i2.idx");
    o.labels = NULL;
    npe_dataset *d = open_ok(&o, "no labels");
    if (d) {
        npe_dataset_info info;
        npe_dataset_get_info(d, &info);
        CHECK_EQ_INT(info.target, NPE_TARGET_NONE);
        npe_array x, y;
        if (!read_ok(d, 0, 2, &x, &y, "no labels")) {
            CHECK(y.data == NULL && y.ndim == 0);
            npe_array_free(&x);
        }
        npe_error e = {0};
        CHECK_EQ_INT(npe_dataset_read(d, -1, 1, &x, &y, &e), NPE_EINVAL);
        CHECK_EQ_INT(npe_dataset_read(d, 1, 2, &x, &y, &e), NPE_EINVAL);
        CHECK_EQ_INT(npe_dataset_read(d, 0, 0, &x, &y, &e), NPE_EINVAL);
        npe_dataset_destroy(d);
    }
    /* A labels file that is not IDX. */
    if (fdir) {
        char images[4096];
        snprintf(images, sizeof(images), "%s/t10k-images-idx3-ubyte.gz", fdir);
        o.images = images;
        o.labels = rp("metrics.txt");
        expect_error(&o, NPE_EFORMAT, "labels not idx", "metrics.txt", NULL);
    }
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s REFS_DIR [FASHION_MNIST_DIR]\n", argv[0]);
        return 2;
    }
    refs = argv[1];
    snprintf(rgb_root, sizeof(rgb_root), "%s/rgb", refs);
    snprintf(seg_images, sizeof(seg_images), "%s/seg/images", refs);
    snprintf(seg_masks, sizeof(seg_masks), "%s/seg/masks", refs);
    /* One work folder per executable: the plain and sanitized tests run at the same time. */
    const char *exe = strrchr(argv[0], '/') ? strrchr(argv[0], '/') + 1 : argv[0];
    snprintf(work, sizeof(work), "%s/work-%s", refs, exe);
    if (mkdir(work, 0755) != 0 && errno != EEXIST) {
        fprintf(stderr, "cannot create %s\n", work);
        return 1;
    }
    const char *fdir = argc > 2 ? argv[2] : NULL;
    char probe[4096];
    if (fdir) {
        snprintf(probe, sizeof(probe), "%s/t10k-images-idx3-ubyte.gz", fdir);
        struct stat st;
        if (stat(probe, &st) != 0 || stat(rp("fmnist_png"), &st) != 0) {
            printf("Fashion-MNIST not found under %s: its tests are skipped\n", fdir);
            fdir = NULL;
        }
    }
    if (fdir)
        test_fashion(fdir);
    test_rgb_folder();
    test_threads();
    test_seg_folder();
    test_label_png();
    test_jpeg();
    test_hand_cases();
    test_npy();
    test_errors(fdir);
    return tu_finish("dataset");
}
