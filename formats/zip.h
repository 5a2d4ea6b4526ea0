/* Zip container codec as PyTorch uses it: stored and deflated records, ZIP64 both ways,
 * 64-byte aligned record data on write, CRC-32 checked on read, memory-mapped input. */
#ifndef NPE_FORMATS_ZIP_H
#define NPE_FORMATS_ZIP_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"

typedef struct npe_zip_entry {
    char *name;             /* NUL-terminated, as stored (validated: no NUL, no "..", not absolute) */
    uint64_t header_offset; /* offset of the local file header */
    uint64_t data_offset;   /* offset of the record's data, resolved from the local header */
    uint64_t comp_size;     /* bytes in the file */
    uint64_t size;          /* uncompressed bytes */
    uint32_t crc32;         /* from the central directory; 0 may mean "not computed" */
    uint16_t method;        /* 0 stored, 8 deflate */
} npe_zip_entry;

typedef struct npe_zip_reader npe_zip_reader;

/* Open a zip archive by memory-mapping path (nothing is copied). The central directory is
 * parsed and every entry's offsets and sizes are checked against the file size. */
int npe_zip_open(const char *path, npe_zip_reader **out, npe_error *err);
/* Same over a caller buffer that must outlive the reader (fuzzing, embedded archives).
 * name is used in messages. */
int npe_zip_open_mem(const void *data, size_t size, const char *name, npe_zip_reader **out,
                     npe_error *err);
void npe_zip_close(npe_zip_reader *z);

/* The whole mapped file (for callers that need raw offsets). */
const unsigned char *npe_zip_base(const npe_zip_reader *z);
size_t npe_zip_file_size(const npe_zip_reader *z);

size_t npe_zip_count(const npe_zip_reader *z);
const npe_zip_entry *npe_zip_entry_at(const npe_zip_reader *z, size_t i);
/* Entry with exactly this name, or NULL. */
const npe_zip_entry *npe_zip_find(const npe_zip_reader *z, const char *name);

/* Zero-copy view of a stored record's data. The CRC-32 is verified on the first view of each
 * entry (a stored CRC of 0 is accepted as "not computed"). Deflated entries: NPE_EUNSUPPORTED. */
int npe_zip_view(npe_zip_reader *z, const npe_zip_entry *e, const void **data, npe_error *err);
/* Read a record into a malloc'd buffer (inflating if needed, CRC checked). Refuses records whose
 * uncompressed size exceeds max_size, and inflation that produces more or less than declared
 * (zip bombs). A NUL byte is appended after the data (not counted in *size). */
int npe_zip_read(npe_zip_reader *z, const npe_zip_entry *e, size_t max_size, void **data,
                 size_t *size, npe_error *err);

/* ---- Writer ---- */
typedef struct npe_zip_writer npe_zip_writer;

enum {
    NPE_ZIP_FORCE_ZIP64 = 1, /* write per-entry ZIP64 extra fields even when not needed */
};

/* Start writing path atomically (temporary file, renamed by npe_zip_writer_finish). */
int npe_zip_writer_open(const char *path, unsigned flags, npe_zip_writer **out, npe_error *err);
/* Append a record. deflate=0 stores it with its data aligned to 64 bytes (padding in an extra
 * field with id 0x4246, as PyTorch's writer does); deflate=1 compresses it (code, text). */
int npe_zip_writer_add(npe_zip_writer *w, const char *name, const void *data, size_t size,
                       int deflate, npe_error *err);
/* Write the central directory and end records (always with ZIP64 end records, as PyTorch),
 * then rename into place. Frees w whatever the outcome. */
int npe_zip_writer_finish(npe_zip_writer *w, npe_error *err);
/* Drop everything written so far (temporary file removed). NULL is accepted. */
void npe_zip_writer_abort(npe_zip_writer *w);

#endif
