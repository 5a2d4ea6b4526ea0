/* Evaluation datasets: image folders, IDX files and .npy arrays, read in batches as float32
 * inputs (NCHW or NHWC) plus int64 labels or segmentation masks, preprocessed like torchvision. */
#ifndef NPE_ENGINE_DATASET_H
#define NPE_ENGINE_DATASET_H

#include <stdint.h>

#include "../formats/array.h"
#include "../formats/error.h"
#include "../formats/label_png.h" /* npe_label_png_decode, used for masks */

/* ---- Sources ------------------------------------------------------------------------------------
 * NPE_DATASET_IMAGEFOLDER, classification (masks == NULL): torchvision's ImageFolder layout,
 *   root/<class>/.../<file>. Classes are the sub-folders of root sorted by name (byte order, as
 *   Python's sorted() on str); a class's index is its rank, so labels equal torchvision's. Files
 *   are those whose name ends, in any case, in .jpg .jpeg .png .bmp .ppm .pgm, found in the class
 *   folder and its sub-folders (depth <= 16), ordered like sorted(os.walk(class_dir)) then
 *   sorted(files): by folder path, then by name. A class folder without images is an error
 *   (torchvision refuses it too). Other files are skipped.
 * NPE_DATASET_IMAGEFOLDER, segmentation (masks != NULL): the images are the files directly in root
 *   with the extensions above, sorted by name; the target of root/<stem>.<ext> is the label PNG
 *   masks/<stem>.png (same stem: the name up to its last '.'), one class index per pixel: an 8-bit
 *   palette PNG (the palette index, as VOC's SegmentationClass) or a 1/2/4/8/16-bit grayscale PNG.
 *   A mask must have its image's size.
 * NPE_DATASET_IDX: images = an IDX file of uint8 [N,H,W] (one channel) or [N,H,W,C] (C = 1 or 3),
 *   labels = an IDX file of integers [N] (or NULL), gzip-compressed or plain (Fashion-MNIST's
 *   t10k-images-idx3-ubyte.gz and t10k-labels-idx1-ubyte.gz).
 * NPE_DATASET_NPY: images = a .npy of float32, float64 (converted to float32) or uint8 [N,...];
 *   labels = a .npy of integers, [N] (class labels) or [N,H,W] (segmentation masks), or NULL.
 *   Arrays are used as stored: resize, crop, channels and bgr are refused for .npy (save the
 *   array preprocessed); scale (uint8 only) and mean/std (on dim 1, or on the last dim when nhwc
 *   says the array is stored NHWC) apply; height/width, if given, require [N,C,H,W] (or
 *   [N,H,W,C]) arrays of that size.
 * NPE_DATASET_CALLBACK: source = the caller's npe_data_source (npengine.h): its read callback fills
 *   each batch (float32 inputs of its sample shape, targets of its dtype and shape); no
 *   preprocessing applies (resize, crop, channels, bgr, nhwc, mean/std are refused), limit does.
 *   Targets: integer dtype with no dims per sample = labels, integer [H,W] = masks, anything
 *   else NPE_TARGET_OTHER (only custom metrics take those). Reads are serialised by a mutex
 *   unless the source says it is concurrent; a buffer the callback replaced or reshaped, or a
 *   label outside int64, is an error.
 * IDX and .npy files are read whole at open; image files are decoded at each read. Images and
 * label PNGs are limited to 2^26 pixels (checked from the header before decoding).
 *
 * ---- Preprocessing of image sources (imagefolder, idx), in this order --------------------------
 * 1. Decode (stb_image, 8 bits per channel; 16-bit PNGs keep their high byte). PNG and BMP
 *    decode bit-exactly like PIL (tested); JPEG decoding (stb's IDCT and chroma upsampling) may
 *    differ from PIL's libjpeg by a few levels (3 at most in the test).
 * 2. Channels: to `channels` (default: 3 for imagefolder, the file's for idx). Alpha is dropped;
 *    gray -> RGB replicates; RGB -> gray is PIL's convert("L"):
 *    L = (19595 R + 38470 G + 7471 B + 32768) >> 16.
 * 3. Resize (optional): resize > 0 sets the shorter side to `resize` and the longer to
 *    int(resize * long / short) (torchvision Resize(int)); resize_h, resize_w > 0 give the exact
 *    size instead. The filter is PIL's BILINEAR resample (Image.resize, as torchvision's Resize on
 *    PIL images): a triangle filter widened by the downscale factor (antialiased), separable,
 *    horizontal pass then vertical, 22-bit fixed-point weights, each pass rounded to 8 bits; an
 *    unchanged dimension is not resampled. Masks are resized with PIL's NEAREST: source index
 *    (int)(s/2 + i*s) accumulated in double as PIL does, s = in/out.
 * 4. Center crop (optional, crop_h x crop_w): top = round((H - crop_h) / 2), left likewise, with
 *    Python's round (half to even), as torchvision's CenterCrop. A crop larger than the image is
 *    an error (torchvision would pad with zeros).
 * 5. To float32: x / 255.0f when scale (default), else x; then (x - mean[c]) / std[c] in float32
 *    when n_norm > 0 (torchvision ToTensor then Normalize give the same bits). mean/std are per
 *    output channel, after the BGR swap; n_norm == 1 broadcasts to every channel.
 * 6. Channel order: bgr = 1 reverses the 3 channels (sources are taken as RGB). Layout: NCHW, or
 *    NHWC when nhwc = 1.
 * Every sample must come out at the dataset's size: (crop_h, crop_w) if set, else
 * (resize_h, resize_w) if set, else the first sample's size after resize. If height/width are
 * given (e.g. from the model's dummy input) they must equal that size. An image that differs is an
 * error naming the file and both sizes.
 *
 * ---- Thread safety ------------------------------------------------------------------------------
 * After npe_dataset_open returns, a dataset is never modified: npe_dataset_read may be called from
 * several threads at once on one dataset (each call allocates its own scratch and outputs; a
 * callback source is called under the dataset's mutex unless it is concurrent). */

typedef enum npe_dataset_kind {
    NPE_DATASET_IMAGEFOLDER = 0,
    NPE_DATASET_IDX,
    NPE_DATASET_NPY,
    NPE_DATASET_CALLBACK,
} npe_dataset_kind;

typedef enum npe_dataset_target {
    NPE_TARGET_NONE = 0, /* no labels: only label-free metrics (fidelity) apply */
    NPE_TARGET_LABELS,   /* int64 [N]: class indices */
    NPE_TARGET_MASKS,    /* int64 [N,H,W]: class index per pixel */
    NPE_TARGET_OTHER,    /* callback sources: any dtype and shape, for custom metrics */
} npe_dataset_target;

typedef struct npe_dataset_opts {
    npe_dataset_kind kind;
    const char *root;   /* imagefolder: the root folder */
    const char *masks;  /* imagefolder: folder of label PNGs (segmentation); NULL: classification */
    const char *images; /* idx, npy: the inputs file */
    const char *labels; /* idx, npy: the labels / masks file; NULL: none */
    int resize;         /* > 0: shorter side to this many pixels */
    int resize_h, resize_w; /* > 0 (both): exact size; excludes resize */
    int crop_h, crop_w; /* > 0 (both): center crop */
    int height, width;  /* > 0: the size every sample must have (checked at open and read) */
    int channels;       /* 0: the source's (imagefolder: 3), else 1 or 3 */
    int bgr;            /* 1: channel order B, G, R (3 channels) */
    int nhwc;           /* 1: inputs come out NHWC (npy: the array is stored NHWC); 0: NCHW */
    int scale;          /* 1 (default): uint8 sources become x / 255; 0: raw 0..255 values */
    int n_norm;         /* 0: no normalisation; 1 or channels: entries of mean/std used */
    double mean[3], std[3];
    int64_t limit;      /* > 0: only the first `limit` samples (in the order above) */
    const npe_data_source *source; /* callback: borrowed, must outlive the dataset */
} npe_dataset_opts;

/* Defaults: kind imagefolder, no paths, no resize/crop, channels 0, RGB, NCHW, scale 1, no
 * normalisation, no limit. */
void npe_dataset_opts_init(npe_dataset_opts *o);

typedef struct npe_dataset npe_dataset;

/* Open a dataset: list the folder or load the arrays, check every option, and fix the per-sample
 * input shape (decoding the first image's header for an image folder). Paths are copied. Errors
 * name the file: NPE_EIO (missing/unreadable), NPE_EFORMAT (bad contents), NPE_EINVAL (options,
 * labels count or shape), NPE_EUNSUPPORTED, NPE_ELIMIT. */
int npe_dataset_open(const npe_dataset_opts *o, npe_dataset **out, npe_error *err);
void npe_dataset_destroy(npe_dataset *d); /* NULL accepted */

typedef struct npe_dataset_info {
    int64_t size;                          /* samples (after limit) */
    int sample_ndim;                       /* dimensions of one input: 3 for images */
    int64_t sample_shape[NPE_MAX_DIMS];    /* [C,H,W] (or [H,W,C] with nhwc); npy: shape[1:] */
    npe_dataset_target target;
    int64_t target_shape[2];               /* masks: [H,W] of one sample */
    int num_classes;                       /* imagefolder classification: class folders; else 0 */
} npe_dataset_info;

void npe_dataset_get_info(const npe_dataset *d, npe_dataset_info *out);
/* Name of class i (imagefolder classification), else NULL. Owned by d. */
const char *npe_dataset_class_name(const npe_dataset *d, int i);
/* Path of the file of sample i (imagefolder), else NULL. Owned by d. */
const char *npe_dataset_sample_path(const npe_dataset *d, int64_t i);

/* Read samples [start, start + n) (n >= 1, start + n <= size). *inputs receives a float32 array
 * [n, C, H, W] ([n, H, W, C] with nhwc; npy: [n, ...]); *targets, if targets is not NULL,
 * receives int64 [n] labels or [n, H, W] masks, or a zeroed array when the dataset has none.
 * Both are allocated here: free them with npe_array_free. On failure both are left zeroed.
 * Safe to call concurrently on one dataset. */
int npe_dataset_read(const npe_dataset *d, int64_t start, int64_t n, npe_array *inputs,
                     npe_array *targets, npe_error *err);



#endif
