/* PyTorch files as named tensors and module trees: torch.save(state_dict), torch.save(model),
 * TorchScript archives (their data.pkl side) and legacy (< 1.6) non-zip .pth files; and the
 * writer of state_dict archives that torch.load reads (also with weights_only=True). */
#ifndef NPE_IMPORTERS_TORCH_FILE_H
#define NPE_IMPORTERS_TORCH_FILE_H

#include <stddef.h>
#include <stdint.h>

#include <npengine/npengine.h>

#include "../formats/error.h"
#include "../formats/fileio.h"
#include "../formats/pickle.h"
#include "../formats/zip.h"

/* One storage (a record "data/<key>" of a zip archive, or a blob of a legacy file). */
typedef struct npe_tstorage {
    char *key;
    char *location;            /* "cpu", "cuda:0" (data is always read to the host) */
    npe_dtype dtype;
    uint64_t numel;
    const unsigned char *data; /* numel * itemsize bytes inside the mapped file */
    const npe_zip_entry *entry;/* zip layout: its record, CRC-checked on first use of the data */
} npe_tstorage;

typedef struct npe_ttensor {
    char *name;                /* dotted path in the pickled object */
    npe_dtype dtype;
    int ndim;
    int64_t shape[NPE_MAX_DIMS];
    int64_t stride[NPE_MAX_DIMS];
    int64_t offset;            /* storage offset in elements */
    size_t storage;            /* index into npe_torch_file.storages */
    int requires_grad;
    int is_parameter;
    const npe_pv *node;        /* the tensor's node in the pickle tree */
    int non_persistent;        /* a buffer state_dict() leaves out (registered persistent=False) */
} npe_ttensor;

typedef struct npe_tmodule {
    char *path;                /* "" for the root */
    char *class_path;          /* "torch.nn.modules.conv.Conv2d", "__torch__.torch.nn.modules.conv.Conv2d" */
    const npe_pv *obj;         /* the OBJECT node */
    size_t n_attrs;
    char **attr_names;
    char **attr_values;        /* npe_pv_repr of each plain attribute */
} npe_tmodule;

typedef struct npe_torch_file {
    npe_archive_kind kind;
    npe_archive_layout layout;
    char *path;
    npe_zip_reader *zip;       /* zip layout */
    npe_map map;               /* legacy layout */
    char *prefix;              /* top folder of the zip records, with trailing '/' ("archive/") */
    int version;               /* content of the version record (0 if absent / legacy) */
    npe_pkl *pkl;              /* data.pkl (or the legacy main pickle) */
    const npe_pv *root;
    npe_tstorage *storages;
    size_t n_storages;
    npe_ttensor *tensors;      /* in pickle order */
    size_t n_tensors;
    npe_tmodule *modules;      /* pre-order: root first */
    size_t n_modules;
} npe_torch_file;

/* The allow-list for PyTorch pickles (tensor rebuild functions, every storage type, OrderedDict,
 * set, torch.Size/device/dtypes, TorchScript pickle helpers, and module classes as inert
 * records); user is unused. Dangerous modules (os, subprocess, builtins.eval, ...) are DENY. */
npe_pkl_global_kind npe_torch_resolve_global(void *user, const char *module, const char *name);

/* Open and fully validate path: every storage lies inside the file with exactly numel*itemsize
 * bytes, and every tensor's extent lies inside its storage. */
int npe_torch_open(const char *path, npe_torch_file **out, npe_error *err);
/* Same over a caller buffer that outlives the file (fuzzing). */
int npe_torch_open_mem(const void *data, size_t size, const char *name, npe_torch_file **out,
                       npe_error *err);
void npe_torch_close(npe_torch_file *f);

/* Check storage i's record against its CRC-32 (once; later calls are free). Opening a file only
 * validates offsets and sizes, so listing a 1 GB archive reads no tensor data; every reader of
 * tensor data calls this first (npe_torch_tensor_copy does). */
int npe_torch_storage_check(const npe_torch_file *f, size_t i, npe_error *err);

/* Copy tensor i into dst as a contiguous array (gathering strides). */
int npe_torch_tensor_copy(const npe_torch_file *f, size_t i, void *dst, size_t dst_bytes,
                          npe_error *err);
/* Element count of tensor i. */
int64_t npe_torch_tensor_numel(const npe_ttensor *t);

/* A tensor to write: its storage is identified by storage_data (tensors passing the same pointer
 * share one storage record, as views do in PyTorch). */
typedef struct npe_tw_tensor {
    const char *name;
    npe_dtype dtype;
    int ndim;
    const int64_t *shape;
    const int64_t *stride;     /* NULL: contiguous */
    int64_t offset;            /* storage offset in elements */
    const void *storage_data;
    uint64_t storage_numel;
    int requires_grad;
} npe_tw_tensor;

/* Write an OrderedDict name -> tensor as PyTorch's zip archive at path (atomic), loadable by
 * torch.load in 1.13 and 2.x, with weights_only=True too. metadata (may be NULL) is written as the
 * OrderedDict's _metadata attribute (as torch.nn.Module.state_dict() produces). */
int npe_torch_save_state_dict(const char *path, const npe_tw_tensor *tensors, size_t n,
                              const npe_pv *metadata, npe_error *err);

#endif
