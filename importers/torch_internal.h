/* Private helpers shared by the PyTorch importer files (torch_globals.c, torch_load.c,
 * torch_save.c): the tables that map PyTorch's storage classes and dtype names to npe_dtype. */
#ifndef NPE_IMPORTERS_TORCH_INTERNAL_H
#define NPE_IMPORTERS_TORCH_INTERNAL_H

#include "torch_file.h"

/* 1 if module.name is a typed storage class (torch.FloatStorage, torch.cuda.HalfStorage ...)
 * of a dtype we know, with *dt set; 0 otherwise. */
int npe_torch_storage_dtype(const char *module, const char *name, npe_dtype *dt);
/* 1 if module.name is torch.UntypedStorage (bytes; 2.x writes it for untyped storages). */
int npe_torch_is_untyped_storage(const char *module, const char *name);
/* Class name of the typed storage of dt ("FloatStorage"), NULL for dtypes without one. */
const char *npe_torch_storage_name(npe_dtype dt);
/* 1 if module.name is a torch dtype we know (torch.float32, torch.half, ...), with *dt set. */
int npe_torch_dtype_global(const char *module, const char *name, npe_dtype *dt);

#endif
