/* Zip container codec as PyTorch uses it: a memory-mapped reader that checks every offset and
 * size against the file before use, and an atomic writer that aligns stored data to 64 bytes. */
#define _POSIX_C_SOURCE 200809L /* strdup */
#include "zip.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <zlib.h>

#include "fileio.h"

#define SIG_LOCAL 0x04034b50u
#define SIG_CENTRAL 0x02014b50u
#define SIG_EOCD 0x06054b50u
#define SIG_Z64_EOCD 0x06064b50u
#define SIG_Z64_LOCATOR 0x07064b50u

#define LOCAL_LEN 30u
#define CENTRAL_LEN 46u
#define EOCD_LEN 22u
#define Z64_EOCD_LEN 56u
#define Z64_LOCATOR_LEN 20u
/* The EOCD record may be followed by a comment of up to 65535 bytes. */
#define EOCD_SEARCH (EOCD_LEN + 0xFFFFu)

#define EXTRA_ZIP64 0x0001u
#define EXTRA_PAD 0x4246u /* "FB", PyTorch's alignment padding */
#define DATA_ALIGN 64u

#define FLAG_ENCRYPTED 0x0001u
#define FLAG_STRONG_ENCRYPTION 0x0040u
#define FLAG_UTF8 0x0800u

#define MAX32 0xFFFFFFFFu
#define MAX16 0xFFFFu

/* zlib takes uInt lengths; feed it at most this much at a time so > 4 GiB records work. */
#define ZCHUNK (1u << 30)

/* Longest name shown in a message; names may be 64 KiB of anything. */
#define SHOW_NAME_MAX 200

/* ---- little-endian helpers ---- */

static uint16_t rd16(const unsigned char *p)
{
    return (uint16_t)(p[0] | (p[1] << 8));
}

static uint32_t rd32(const unsigned char *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

static uint64_t rd64(const unsigned char *p)
{
    return (uint64_t)rd32(p) | ((uint64_t)rd32(p + 4) << 32);
}

static unsigned char *wr16(unsigned char *p, unsigned v)
{
    p[0] = (unsigned char)(v & 0xFF);
    p[1] = (unsigned char)((v >> 8) & 0xFF);
    return p + 2;
}

static unsigned char *wr32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)((v >> (8 * i)) & 0xFF);
    return p + 4;
}

static unsigned char *wr64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)((v >> (8 * i)) & 0xFF);
    return p + 8;
}

static uint32_t crc_of(const unsigned char *p, uint64_t n)
{
    uLong c = crc32(0L, Z_NULL, 0);
    while (n) {
        uInt chunk = n > ZCHUNK ? ZCHUNK : (uInt)n;
        c = crc32(c, p, chunk);
        p += chunk;
        n -= chunk;
    }
    return (uint32_t)c;
}

/* Copy a record name into buf for a message: cut to SHOW_NAME_MAX, control bytes shown as '?'
 * so a hostile name cannot garble the terminal. */
static const char *show_name(char *buf, size_t bufsize, const char *name, size_t len)
{
    size_t n = len < bufsize - 4 ? len : bufsize - 4, i;
    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)name[i];
        buf[i] = (c < 0x20 || c == 0x7F) ? '?' : (char)c;
    }
    if (n < len) {
        memcpy(buf + i, "...", 3);
        i += 3;
    }
    buf[i] = '\0';
    return buf;
}

/* Why name may not be a record name, or NULL when it is fine. Records are extracted and
 * joined to paths by other tools, so anything that could escape the archive's folder is
 * refused; '\\' counts as a separator because Windows tools treat it as one. */
static const char *name_problem(const char *name, size_t len)
{
    if (len == 0)
        return "empty name";
    if (memchr(name, '\0', len))
        return "name contains a NUL byte";
    if (name[0] == '/' || name[0] == '\\')
        return "absolute path";
    if (len >= 2 && name[1] == ':' &&
        ((name[0] >= 'A' && name[0] <= 'Z') || (name[0] >= 'a' && name[0] <= 'z')))
        return "absolute path (drive letter)";
    size_t start = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i == len || name[i] == '/' || name[i] == '\\') {
            if (i - start == 2 && name[start] == '.' && name[start + 1] == '.')
                return "name has a '..' path component";
            start = i + 1;
        }
    }
    return NULL;
}

/* ---- name index: open addressing over stable name pointers ---- */

typedef struct name_slot {
    const char *name; /* NULL: empty */
    size_t idx;
} name_slot;

typedef struct name_index {
    name_slot *slots;
    size_t cap; /* power of two, or 0 */
    size_t used;
} name_index;

static uint64_t hash_name(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ull;
    }
    return h;
}

static const name_slot *index_find(const name_index *ix, const char *name)
{
    if (!ix->cap)
        return NULL;
    size_t mask = ix->cap - 1, i = (size_t)hash_name(name) & mask;
    while (ix->slots[i].name) {
        if (strcmp(ix->slots[i].name, name) == 0)
            return &ix->slots[i];
        i = (i + 1) & mask;
    }
    return NULL;
}

static void index_put(name_index *ix, const char *name, size_t idx)
{
    size_t mask = ix->cap - 1, i = (size_t)hash_name(name) & mask;
    while (ix->slots[i].name)
        i = (i + 1) & mask;
    ix->slots[i].name = name;
    ix->slots[i].idx = idx;
    ix->used++;
}

/* Make room for one more name, keeping the table at most half full. */
static int index_reserve(name_index *ix, size_t want)
{
    if (want * 2 <= ix->cap)
        return 0;
    size_t cap = ix->cap ? ix->cap : 16;
    while (cap < want * 2) {
        if (cap > SIZE_MAX / 4 / sizeof(name_slot))
            return -1;
        cap *= 2;
    }
    name_slot *slots = calloc(cap, sizeof(*slots));
    if (!slots)
        return -1;
    name_index bigger = {slots, cap, 0};
    for (size_t i = 0; i < ix->cap; i++)
        if (ix->slots[i].name)
            index_put(&bigger, ix->slots[i].name, ix->slots[i].idx);
    free(ix->slots);
    *ix = bigger;
    return 0;
}

/* ---- Reader ---- */

struct npe_zip_reader {
    npe_map map; /* data == NULL when reading a caller buffer */
    const unsigned char *base;
    size_t size;
    char *path; /* for messages */
    npe_zip_entry *entries;
    size_t count;
    char *names;             /* every entry's name, NUL-terminated, back to back */
    unsigned char *verified; /* per entry: CRC-32 already checked (written by view and read,
                              * so one reader is used by one thread at a time) */
    name_index index;
};

#define ZERR(code, ...) npe_error_set(err, code, __VA_ARGS__)

/* Find the classic end record: the last signature in the final 65557 bytes whose comment
 * fits in what follows it. */
static int find_eocd(const npe_zip_reader *z, uint64_t *eocd_off, npe_error *err)
{
    if (z->size < EOCD_LEN)
        return ZERR(NPE_EFORMAT,
                    "%s: not a zip archive (%zu bytes, smaller than an end of central directory "
                    "record)",
                    z->path, z->size);
    size_t lowest = z->size > EOCD_SEARCH ? z->size - EOCD_SEARCH : 0;
    for (size_t p = z->size - EOCD_LEN;; p--) {
        const unsigned char *q = z->base + p;
        if (rd32(q) == SIG_EOCD && (size_t)rd16(q + 20) <= z->size - EOCD_LEN - p) {
            *eocd_off = p;
            return 0;
        }
        if (p == lowest)
            break;
    }
    return ZERR(NPE_EFORMAT,
                "%s: no end of central directory record in the last %zu bytes (not a zip "
                "archive, or truncated)",
                z->path, z->size - lowest);
}

typedef struct cd_info {
    uint64_t count, size, offset;
    uint64_t limit; /* where the end records start: the directory must end before */
} cd_info;

static int read_end_records(const npe_zip_reader *z, cd_info *cd, npe_error *err)
{
    uint64_t eocd = 0;
    int rc = find_eocd(z, &eocd, err);
    if (rc)
        return rc;
    const unsigned char *q = z->base + eocd;
    uint32_t disk = rd16(q + 4), cd_disk = rd16(q + 6);
    uint64_t n_disk = rd16(q + 8), n_total = rd16(q + 10);
    cd->size = rd32(q + 12);
    cd->offset = rd32(q + 16);
    cd->count = n_total;
    cd->limit = eocd;

    /* PyTorch always writes the ZIP64 locator right before the classic record; when present
     * its values are the real ones, whatever the classic fields say. */
    if (eocd >= Z64_LOCATOR_LEN && rd32(z->base + eocd - Z64_LOCATOR_LEN) == SIG_Z64_LOCATOR) {
        uint64_t loc = eocd - Z64_LOCATOR_LEN;
        const unsigned char *l = z->base + loc;
        uint32_t z64_disk = rd32(l + 4), n_disks = rd32(l + 16);
        uint64_t z64 = rd64(l + 8);
        if (z64_disk != 0 || n_disks > 1)
            return ZERR(NPE_EUNSUPPORTED, "%s: archive spans %u disks (not supported)", z->path,
                        (unsigned)n_disks);
        if (loc < Z64_EOCD_LEN || z64 > loc - Z64_EOCD_LEN)
            return ZERR(NPE_EFORMAT,
                        "%s: ZIP64 end record offset %llu lies outside the file (locator at "
                        "offset %llu)",
                        z->path, (unsigned long long)z64, (unsigned long long)loc);
        const unsigned char *r = z->base + z64;
        if (rd32(r) != SIG_Z64_EOCD)
            return ZERR(NPE_EFORMAT,
                        "%s: no ZIP64 end of central directory record at offset %llu (found "
                        "signature 0x%08x)",
                        z->path, (unsigned long long)z64, (unsigned)rd32(r));
        uint64_t rec_size = rd64(r + 4);
        if (rec_size < Z64_EOCD_LEN - 12 || rec_size > loc - z64 - 12)
            return ZERR(NPE_EFORMAT,
                        "%s: ZIP64 end record at offset %llu declares %llu bytes, expected "
                        "44..%llu",
                        z->path, (unsigned long long)z64, (unsigned long long)rec_size,
                        (unsigned long long)(loc - z64 - 12));
        disk = rd32(r + 16);
        cd_disk = rd32(r + 20);
        n_disk = rd64(r + 24);
        n_total = rd64(r + 32);
        cd->size = rd64(r + 40);
        cd->offset = rd64(r + 48);
        cd->count = n_total;
        cd->limit = z64;
    }
    if (disk != 0 || cd_disk != 0 || n_disk != n_total)
        return ZERR(NPE_EUNSUPPORTED,
                    "%s: archive spans several disks (disk %u, directory on disk %u, %llu of "
                    "%llu records here): not supported",
                    z->path, (unsigned)disk, (unsigned)cd_disk, (unsigned long long)n_disk,
                    (unsigned long long)n_total);
    if (cd->offset > cd->limit || cd->size > cd->limit - cd->offset)
        return ZERR(NPE_EFORMAT,
                    "%s: central directory (offset %llu, %llu bytes) runs past the end records "
                    "at offset %llu (truncated or corrupt archive)",
                    z->path, (unsigned long long)cd->offset, (unsigned long long)cd->size,
                    (unsigned long long)cd->limit);
    if (cd->count > cd->size / CENTRAL_LEN)
        return ZERR(NPE_EFORMAT,
                    "%s: central directory claims %llu records but its %llu bytes hold at most "
                    "%llu",
                    z->path, (unsigned long long)cd->count, (unsigned long long)cd->size,
                    (unsigned long long)(cd->size / CENTRAL_LEN));
    return 0;
}

/* Read the 64-bit values of a central directory entry that are marked 0xFFFFFFFF (0xFFFF for
 * the disk) from its ZIP64 extra field, in the order the format fixes. */
static int read_zip64_extra(const npe_zip_reader *z, const char *shown, const unsigned char *ex,
                            size_t ex_len, uint64_t *size, uint64_t *comp, uint64_t *local,
                            uint32_t *disk, npe_error *err)
{
    int need = *size == MAX32 || *comp == MAX32 || *local == MAX32 || *disk == MAX16;
    size_t off = 0;
    while (ex_len - off >= 4) {
        unsigned id = rd16(ex + off), len = rd16(ex + off + 2);
        if (len > ex_len - off - 4)
            return ZERR(NPE_EFORMAT,
                        "%s: record '%s': extra field 0x%04x of %u bytes overruns the %zu bytes "
                        "of extra data",
                        z->path, shown, id, len, ex_len);
        if (id == EXTRA_ZIP64) {
            const unsigned char *d = ex + off + 4;
            size_t at = 0;
            uint64_t *fields[3] = {size, comp, local};
            static const char *what[3] = {"uncompressed size", "compressed size",
                                          "local header offset"};
            for (int i = 0; i < 3; i++) {
                if (*fields[i] != MAX32)
                    continue;
                if (len - at < 8)
                    return ZERR(NPE_EFORMAT,
                                "%s: record '%s': ZIP64 extra field (%u bytes) lacks the %s", z->path,
                                shown, len, what[i]);
                *fields[i] = rd64(d + at);
                at += 8;
            }
            if (*disk == MAX16) {
                if (len - at < 4)
                    return ZERR(NPE_EFORMAT,
                                "%s: record '%s': ZIP64 extra field (%u bytes) lacks the disk number",
                                z->path, shown, len);
                *disk = rd32(d + at);
            }
            return 0;
        }
        off += 4 + (size_t)len;
    }
    if (need)
        return ZERR(NPE_EFORMAT,
                    "%s: record '%s': sizes or offset are marked as ZIP64 (0xFFFFFFFF) but the "
                    "entry has no ZIP64 extra field",
                    z->path, shown);
    return 0;
}

/* Parse the central directory entry at *pos (relative to the directory) into z->entries[i]. */
static int read_entry(npe_zip_reader *z, const cd_info *cd, size_t i, uint64_t *pos, char **name_out,
                      npe_error *err)
{
    const unsigned char *dir = z->base + cd->offset;
    uint64_t left = cd->size - *pos;
    char shown[SHOW_NAME_MAX + 8];
    if (left < CENTRAL_LEN)
        return ZERR(NPE_EFORMAT,
                    "%s: central directory entry %zu of %llu at offset %llu is truncated (%llu "
                    "bytes left of %llu)",
                    z->path, i, (unsigned long long)cd->count,
                    (unsigned long long)(cd->offset + *pos), (unsigned long long)left,
                    (unsigned long long)cd->size);
    const unsigned char *c = dir + *pos;
    if (rd32(c) != SIG_CENTRAL)
        return ZERR(NPE_EFORMAT,
                    "%s: central directory entry %zu at offset %llu: bad signature 0x%08x "
                    "(expected 0x%08x)",
                    z->path, i, (unsigned long long)(cd->offset + *pos), (unsigned)rd32(c),
                    SIG_CENTRAL);
    unsigned flags = rd16(c + 8), method = rd16(c + 10);
    uint32_t crc = rd32(c + 16);
    uint64_t comp = rd32(c + 20), size = rd32(c + 24), local = rd32(c + 42);
    size_t name_len = rd16(c + 28), extra_len = rd16(c + 30), comment_len = rd16(c + 32);
    uint32_t disk = rd16(c + 34);
    if (name_len + extra_len + comment_len > left - CENTRAL_LEN)
        return ZERR(NPE_EFORMAT,
                    "%s: central directory entry %zu at offset %llu: name, extra and comment "
                    "(%zu bytes) overrun the directory",
                    z->path, i, (unsigned long long)(cd->offset + *pos),
                    name_len + extra_len + comment_len);
    const char *raw = (const char *)c + CENTRAL_LEN;
    show_name(shown, sizeof(shown), raw, name_len);
    const char *bad = name_problem(raw, name_len);
    if (bad)
        return ZERR(NPE_EFORMAT, "%s: record '%s' (entry %zu): refused name: %s", z->path, shown, i,
                    bad);
    int rc = read_zip64_extra(z, shown, c + CENTRAL_LEN + name_len, extra_len, &size, &comp, &local,
                              &disk, err);
    if (rc)
        return rc;
    if (disk != 0)
        return ZERR(NPE_EUNSUPPORTED, "%s: record '%s' starts on disk %u (multi-disk archives are "
                                      "not supported)",
                    z->path, shown, (unsigned)disk);
    if (flags & (FLAG_ENCRYPTED | FLAG_STRONG_ENCRYPTION))
        return ZERR(NPE_EUNSUPPORTED, "%s: record '%s' is encrypted (not supported)", z->path,
                    shown);
    if (method != 0 && method != 8)
        return ZERR(NPE_EUNSUPPORTED,
                    "%s: record '%s': compression method %u not supported (only 0 stored and 8 "
                    "deflate)",
                    z->path, shown, method);
    if (method == 0 && comp != size)
        return ZERR(NPE_EFORMAT,
                    "%s: record '%s' is stored but its compressed size %llu differs from its size "
                    "%llu",
                    z->path, shown, (unsigned long long)comp, (unsigned long long)size);

    /* Record data lives before the central directory; so must its local header. */
    if (local > cd->offset || cd->offset - local < LOCAL_LEN)
        return ZERR(NPE_EFORMAT,
                    "%s: record '%s': local header offset %llu lies outside the record data "
                    "(central directory starts at %llu)",
                    z->path, shown, (unsigned long long)local, (unsigned long long)cd->offset);
    const unsigned char *h = z->base + local;
    if (rd32(h) != SIG_LOCAL)
        return ZERR(NPE_EFORMAT,
                    "%s: record '%s': no local header at offset %llu (found signature 0x%08x)",
                    z->path, shown, (unsigned long long)local, (unsigned)rd32(h));
    uint64_t local_name_len = rd16(h + 26), local_extra_len = rd16(h + 28);
    uint64_t data = local + LOCAL_LEN + local_name_len + local_extra_len;
    if (data > cd->offset || comp > cd->offset - data)
        return ZERR(NPE_EFORMAT,
                    "%s: record '%s': data (offset %llu, %llu bytes) runs past the record area "
                    "(central directory starts at %llu)",
                    z->path, shown, (unsigned long long)data, (unsigned long long)comp,
                    (unsigned long long)cd->offset);
    if (local_name_len != name_len || memcmp(h + LOCAL_LEN, raw, name_len) != 0) {
        char lshown[SHOW_NAME_MAX + 8];
        return ZERR(NPE_EFORMAT,
                    "%s: record '%s': local header at offset %llu names it '%s' instead", z->path,
                    shown, (unsigned long long)local,
                    show_name(lshown, sizeof(lshown), (const char *)h + LOCAL_LEN,
                              (size_t)local_name_len));
    }

    char *name = *name_out;
    memcpy(name, raw, name_len);
    name[name_len] = '\0';
    *name_out += name_len + 1;
    const name_slot *dup = index_find(&z->index, name);
    if (dup)
        return ZERR(NPE_EFORMAT, "%s: record '%s' appears twice (entries %zu and %zu)", z->path,
                    shown, dup->idx, i);
    index_put(&z->index, name, i);

    npe_zip_entry *e = &z->entries[i];
    e->name = name;
    e->header_offset = local;
    e->data_offset = data;
    e->comp_size = comp;
    e->size = size;
    e->crc32 = crc;
    e->method = (uint16_t)method;
    *pos += CENTRAL_LEN + name_len + extra_len + comment_len;
    return 0;
}

typedef struct span {
    uint64_t start, end; /* local header to end of data */
    size_t idx;
} span;

static int span_cmp(const void *a, const void *b)
{
    const span *x = a, *y = b;
    return x->start < y->start ? -1 : x->start > y->start;
}

/* Records must not share bytes: overlapping records are how zip bombs multiply one
 * compressed stream, and how two readers can be shown different contents. */
static int check_overlaps(const npe_zip_reader *z, npe_error *err)
{
    if (z->count < 2)
        return 0;
    span *s = malloc(z->count * sizeof(*s));
    if (!s)
        return ZERR(NPE_ENOMEM, "%s: out of memory", z->path);
    for (size_t i = 0; i < z->count; i++) {
        const npe_zip_entry *e = &z->entries[i];
        s[i] = (span){e->header_offset, e->data_offset + e->comp_size, i};
    }
    qsort(s, z->count, sizeof(*s), span_cmp);
    int rc = 0;
    for (size_t i = 1; i < z->count && !rc; i++) {
        if (s[i - 1].end > s[i].start) {
            const npe_zip_entry *a = &z->entries[s[i - 1].idx], *b = &z->entries[s[i].idx];
            char an[SHOW_NAME_MAX + 8], bn[SHOW_NAME_MAX + 8];
            rc = ZERR(NPE_EFORMAT,
                      "%s: records '%s' (bytes %llu..%llu) and '%s' (from byte %llu) overlap",
                      z->path, show_name(an, sizeof(an), a->name, strlen(a->name)),
                      (unsigned long long)s[i - 1].start, (unsigned long long)s[i - 1].end,
                      show_name(bn, sizeof(bn), b->name, strlen(b->name)),
                      (unsigned long long)s[i].start);
        }
    }
    free(s);
    return rc;
}

static int parse_archive(npe_zip_reader *z, npe_error *err)
{
    cd_info cd;
    int rc = read_end_records(z, &cd, err);
    if (rc)
        return rc;
    /* Both bounded by the directory size, itself bounded by the file: each entry takes at least
     * 46 bytes there and its name plus NUL at most 46 + name length here. */
    size_t n = (size_t)cd.count;
    size_t names_bytes = (size_t)cd.size + 1;
    z->entries = calloc(n ? n : 1, sizeof(*z->entries));
    z->verified = calloc(n ? n : 1, 1);
    z->names = malloc(names_bytes);
    if (!z->entries || !z->verified || !z->names || index_reserve(&z->index, n))
        return ZERR(NPE_ENOMEM, "%s: out of memory for %zu directory entries", z->path, n);
    char *name_at = z->names;
    uint64_t pos = 0;
    for (size_t i = 0; i < n; i++) {
        rc = read_entry(z, &cd, i, &pos, &name_at, err);
        if (rc)
            return rc;
        z->count = i + 1;
    }
    return check_overlaps(z, err);
}

static int open_common(npe_zip_reader *z, npe_zip_reader **out, npe_error *err)
{
    int rc = parse_archive(z, err);
    if (rc) {
        npe_zip_close(z);
        return rc;
    }
    *out = z;
    return 0;
}

static npe_zip_reader *reader_new(const char *name)
{
    npe_zip_reader *z = calloc(1, sizeof(*z));
    if (!z)
        return NULL;
    z->path = strdup(name);
    if (!z->path) {
        free(z);
        return NULL;
    }
    return z;
}

int npe_zip_open(const char *path, npe_zip_reader **out, npe_error *err)
{
    *out = NULL;
    if (!path)
        return ZERR(NPE_EINVAL, "npe_zip_open: path is NULL");
    npe_zip_reader *z = reader_new(path);
    if (!z)
        return ZERR(NPE_ENOMEM, "%s: out of memory", path);
    int rc = npe_map_file(path, &z->map, err);
    if (rc) {
        npe_zip_close(z);
        return rc;
    }
    z->base = z->map.data;
    z->size = z->map.size;
    return open_common(z, out, err);
}

int npe_zip_open_mem(const void *data, size_t size, const char *name, npe_zip_reader **out,
                     npe_error *err)
{
    *out = NULL;
    if (!name)
        name = "<memory>";
    if (!data && size)
        return ZERR(NPE_EINVAL, "%s: NULL buffer of %zu bytes", name, size);
    npe_zip_reader *z = reader_new(name);
    if (!z)
        return ZERR(NPE_ENOMEM, "%s: out of memory", name);
    z->base = data;
    z->size = size;
    return open_common(z, out, err);
}

void npe_zip_close(npe_zip_reader *z)
{
    if (!z)
        return;
    npe_unmap_file(&z->map);
    free(z->index.slots);
    free(z->names);
    free(z->verified);
    free(z->entries);
    free(z->path);
    free(z);
}

const unsigned char *npe_zip_base(const npe_zip_reader *z)
{
    return z->base;
}

size_t npe_zip_file_size(const npe_zip_reader *z)
{
    return z->size;
}

size_t npe_zip_count(const npe_zip_reader *z)
{
    return z->count;
}

const npe_zip_entry *npe_zip_entry_at(const npe_zip_reader *z, size_t i)
{
    return i < z->count ? &z->entries[i] : NULL;
}

const npe_zip_entry *npe_zip_find(const npe_zip_reader *z, const char *name)
{
    const name_slot *s = name ? index_find(&z->index, name) : NULL;
    return s ? &z->entries[s->idx] : NULL;
}

/* Index of e in z, or -1 when e is not one of z's entries (compared as integers: pointers
 * into different objects may not be compared directly). */
static long long entry_index(const npe_zip_reader *z, const npe_zip_entry *e)
{
    uintptr_t first = (uintptr_t)z->entries, at = (uintptr_t)e;
    if (!e || at < first || (at - first) % sizeof(*e) || (at - first) / sizeof(*e) >= z->count)
        return -1;
    return (long long)((at - first) / sizeof(*e));
}

static int check_crc(npe_zip_reader *z, size_t idx, const unsigned char *data, npe_error *err)
{
    const npe_zip_entry *e = &z->entries[idx];
    if (z->verified[idx] || e->crc32 == 0)
        return 0;
    uint32_t got = crc_of(data, e->size);
    if (got != e->crc32) {
        char shown[SHOW_NAME_MAX + 8];
        return ZERR(NPE_EFORMAT, "%s: record '%s': CRC-32 mismatch (stored 0x%08x, computed 0x%08x)",
                    z->path, show_name(shown, sizeof(shown), e->name, strlen(e->name)),
                    (unsigned)e->crc32, (unsigned)got);
    }
    z->verified[idx] = 1;
    return 0;
}

int npe_zip_view(npe_zip_reader *z, const npe_zip_entry *e, const void **data, npe_error *err)
{
    *data = NULL;
    long long idx = entry_index(z, e);
    if (idx < 0)
        return ZERR(NPE_EINVAL, "%s: npe_zip_view: entry does not belong to this archive", z->path);
    char shown[SHOW_NAME_MAX + 8];
    if (e->method != 0)
        return ZERR(NPE_EUNSUPPORTED,
                    "%s: record '%s' is deflate-compressed and cannot be viewed in place (read "
                    "it instead)",
                    z->path, show_name(shown, sizeof(shown), e->name, strlen(e->name)));
    const unsigned char *p = z->base + e->data_offset;
    int rc = check_crc(z, (size_t)idx, p, err);
    if (rc)
        return rc;
    *data = p;
    return 0;
}

/* Inflate e's raw deflate stream into exactly e->size bytes at out; producing more or fewer
 * bytes than the directory declares is an error (zip bombs, corrupt records). */
static int inflate_entry(const npe_zip_reader *z, const npe_zip_entry *e, unsigned char *out,
                         npe_error *err)
{
    char shown[SHOW_NAME_MAX + 8];
    show_name(shown, sizeof(shown), e->name, strlen(e->name));
    z_stream s;
    memset(&s, 0, sizeof(s));
    if (inflateInit2(&s, -15) != Z_OK)
        return ZERR(NPE_ENOMEM, "%s: record '%s': cannot start inflate", z->path, shown);
    const unsigned char *in = z->base + e->data_offset;
    uint64_t in_left = e->comp_size, out_left = e->size;
    unsigned char spare[1];
    int in_spare = 0, rc = 0;
    for (;;) {
        if (s.avail_in == 0 && in_left) {
            uInt n = in_left > ZCHUNK ? ZCHUNK : (uInt)in_left;
            s.next_in = (Bytef *)(uintptr_t)in;
            s.avail_in = n;
            in += n;
            in_left -= n;
        }
        if (s.avail_out == 0) {
            if (out_left) {
                uInt n = out_left > ZCHUNK ? ZCHUNK : (uInt)out_left;
                s.next_out = out;
                s.avail_out = n;
                out += n;
                out_left -= n;
            } else {
                /* Declared size reached: one more byte of output means the record lies. */
                s.next_out = spare;
                s.avail_out = 1;
                in_spare = 1;
            }
        }
        int zr = inflate(&s, Z_NO_FLUSH);
        if (in_spare && s.avail_out == 0) {
            rc = ZERR(NPE_EFORMAT,
                      "%s: record '%s': inflates to more than its declared size of %llu bytes",
                      z->path, shown, (unsigned long long)e->size);
            break;
        }
        if (zr == Z_STREAM_END) {
            uint64_t missing = out_left + (in_spare ? 0 : s.avail_out);
            if (missing)
                rc = ZERR(NPE_EFORMAT,
                          "%s: record '%s': inflates to %llu bytes, fewer than its declared size "
                          "of %llu",
                          z->path, shown, (unsigned long long)(e->size - missing),
                          (unsigned long long)e->size);
            break;
        }
        if (zr == Z_BUF_ERROR) {
            /* Output space is always offered, so zlib is starved of input. */
            rc = ZERR(NPE_EFORMAT,
                      "%s: record '%s': compressed data (%llu bytes) ends before the deflate "
                      "stream does",
                      z->path, shown, (unsigned long long)e->comp_size);
            break;
        }
        if (zr != Z_OK) {
            rc = ZERR(zr == Z_MEM_ERROR ? NPE_ENOMEM : NPE_EFORMAT,
                      "%s: record '%s': corrupt deflate data (%s)", z->path, shown,
                      s.msg ? s.msg : "zlib error");
            break;
        }
    }
    inflateEnd(&s);
    return rc;
}

int npe_zip_read(npe_zip_reader *z, const npe_zip_entry *e, size_t max_size, void **data,
                 size_t *size, npe_error *err)
{
    *data = NULL;
    if (size)
        *size = 0;
    long long idx = entry_index(z, e);
    if (idx < 0)
        return ZERR(NPE_EINVAL, "%s: npe_zip_read: entry does not belong to this archive", z->path);
    if (e->size > max_size || e->size >= SIZE_MAX) {
        char shown[SHOW_NAME_MAX + 8];
        return ZERR(NPE_ELIMIT, "%s: record '%s' is %llu bytes, more than the limit of %zu bytes",
                    z->path, show_name(shown, sizeof(shown), e->name, strlen(e->name)),
                    (unsigned long long)e->size, max_size);
    }
    size_t n = (size_t)e->size;
    unsigned char *buf = malloc(n + 1);
    if (!buf)
        return ZERR(NPE_ENOMEM, "%s: out of memory for a record of %zu bytes", z->path, n);
    int rc = 0;
    if (e->method == 0) {
        if (n)
            memcpy(buf, z->base + e->data_offset, n);
    } else {
        rc = inflate_entry(z, e, buf, err);
    }
    if (!rc)
        rc = check_crc(z, (size_t)idx, buf, err);
    if (rc) {
        free(buf);
        return rc;
    }
    buf[n] = '\0';
    *data = buf;
    if (size)
        *size = n;
    return 0;
}

/* ---- Writer ---- */

typedef struct wrec {
    char *name;
    uint64_t offset, comp, size;
    uint32_t crc;
    uint16_t method;
} wrec;

struct npe_zip_writer {
    npe_afile af;
    unsigned flags;
    wrec *recs;
    size_t n, cap;
    name_index index;
    int failed; /* a write went wrong: the file is unusable, only abort remains */
};

/* 1980-01-01 00:00: archives do not depend on when they were written. */
#define DOS_TIME 0u
#define DOS_DATE 0x21u

#define VERSION_MADE_BY 45u /* spec 4.5, MS-DOS attributes (as PyTorch: host 0) */
#define VERSION_STORED 10u
#define VERSION_DEFLATE 20u
#define VERSION_ZIP64 45u

int npe_zip_writer_open(const char *path, unsigned flags, npe_zip_writer **out, npe_error *err)
{
    *out = NULL;
    if (!path)
        return ZERR(NPE_EINVAL, "npe_zip_writer_open: path is NULL");
    npe_zip_writer *w = calloc(1, sizeof(*w));
    if (!w)
        return ZERR(NPE_ENOMEM, "%s: out of memory", path);
    int rc = npe_afile_open(&w->af, path, err);
    if (rc) {
        free(w);
        return rc;
    }
    w->flags = flags;
    *out = w;
    return 0;
}

static void writer_free(npe_zip_writer *w)
{
    for (size_t i = 0; i < w->n; i++)
        free(w->recs[i].name);
    free(w->recs);
    free(w->index.slots);
    free(w);
}

void npe_zip_writer_abort(npe_zip_writer *w)
{
    if (!w)
        return;
    npe_afile_abort(&w->af);
    writer_free(w);
}

static int wwrite(npe_zip_writer *w, const void *p, size_t n, npe_error *err)
{
    int rc = npe_afile_write(&w->af, p, n, err);
    if (rc)
        w->failed = 1;
    return rc;
}

/* Raw-deflate size bytes at level 6 into a malloc'd buffer (the local header needs the
 * compressed size before the data, and we write no data descriptors). */
static int deflate_buf(const npe_zip_writer *w, const char *name, const unsigned char *data,
                       size_t size, unsigned char **out, uint64_t *out_len, npe_error *err)
{
    z_stream s;
    memset(&s, 0, sizeof(s));
    if (deflateInit2(&s, 6, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        return ZERR(NPE_ENOMEM, "%s: record '%s': cannot start deflate", w->af.path, name);
    /* deflateBound is exact for one call; add a margin per chunk since we feed in pieces. */
    uLong bound = deflateBound(&s, (uLong)size);
    size_t cap = (size_t)bound + 64 + (size / ZCHUNK + 1) * 16;
    if ((uLong)size != size || bound < size || cap < bound) {
        deflateEnd(&s);
        return ZERR(NPE_ELIMIT, "%s: record '%s' of %zu bytes is too large to deflate", w->af.path,
                    name, size);
    }
    unsigned char *buf = malloc(cap);
    if (!buf) {
        deflateEnd(&s);
        return ZERR(NPE_ENOMEM, "%s: record '%s': out of memory for %zu bytes", w->af.path, name,
                    cap);
    }
    size_t in_left = size, out_done = 0;
    for (;;) {
        if (s.avail_in == 0 && in_left) {
            uInt n = in_left > ZCHUNK ? ZCHUNK : (uInt)in_left;
            s.next_in = (Bytef *)(uintptr_t)(data + (size - in_left));
            s.avail_in = n;
            in_left -= n;
        }
        if (out_done == cap) {
            free(buf);
            deflateEnd(&s);
            return ZERR(NPE_EIO, "%s: record '%s': deflate output exceeded its bound", w->af.path,
                        name);
        }
        size_t room = cap - out_done;
        s.next_out = buf + out_done;
        s.avail_out = room > ZCHUNK ? ZCHUNK : (uInt)room;
        uInt before = s.avail_out;
        int zr = deflate(&s, in_left ? Z_NO_FLUSH : Z_FINISH);
        out_done += before - s.avail_out;
        if (zr == Z_STREAM_END)
            break;
        if (zr != Z_OK && zr != Z_BUF_ERROR) {
            free(buf);
            deflateEnd(&s);
            return ZERR(NPE_EIO, "%s: record '%s': deflate failed (zlib error %d)", w->af.path,
                        name, zr);
        }
    }
    deflateEnd(&s);
    *out = buf;
    *out_len = out_done;
    return 0;
}

int npe_zip_writer_add(npe_zip_writer *w, const char *name, const void *data, size_t size,
                       int deflate, npe_error *err)
{
    if (w->failed)
        return ZERR(NPE_EIO, "%s: an earlier write failed; the archive must be aborted",
                    w->af.path);
    if (!name || (!data && size))
        return ZERR(NPE_EINVAL, "%s: npe_zip_writer_add: NULL %s", w->af.path,
                    name ? "data" : "name");
    size_t name_len = strlen(name);
    char shown[SHOW_NAME_MAX + 8];
    show_name(shown, sizeof(shown), name, name_len);
    const char *bad = name_problem(name, name_len);
    if (bad)
        return ZERR(NPE_EINVAL, "%s: record '%s': refused name: %s", w->af.path, shown, bad);
    if (name_len > MAX16)
        return ZERR(NPE_EINVAL, "%s: record '%s': name of %zu bytes is longer than 65535",
                    w->af.path, shown, name_len);
    if (index_find(&w->index, name))
        return ZERR(NPE_EINVAL, "%s: record '%s' added twice", w->af.path, shown);
    if (w->n == w->cap) {
        size_t cap = w->cap ? w->cap * 2 : 16;
        wrec *recs = cap <= SIZE_MAX / sizeof(*recs) ? realloc(w->recs, cap * sizeof(*recs)) : NULL;
        if (!recs)
            return ZERR(NPE_ENOMEM, "%s: out of memory", w->af.path);
        w->recs = recs;
        w->cap = cap;
    }
    wrec r = {0};
    r.name = strdup(name);
    if (!r.name || index_reserve(&w->index, w->n + 1)) {
        free(r.name);
        return ZERR(NPE_ENOMEM, "%s: out of memory", w->af.path);
    }
    r.offset = w->af.written;
    r.size = size;
    r.crc = crc_of(data, size);
    r.method = deflate ? 8 : 0;
    const unsigned char *payload = data;
    unsigned char *packed = NULL;
    r.comp = size;
    if (deflate) {
        int rc = deflate_buf(w, shown, data, size, &packed, &r.comp, err);
        if (rc) {
            free(r.name);
            return rc;
        }
        payload = packed;
    }

    int local64 = (w->flags & NPE_ZIP_FORCE_ZIP64) || r.size >= MAX32 || r.comp >= MAX32;
    int any64 = local64 || r.offset >= MAX32;
    unsigned char head[LOCAL_LEN], extra[20 + 4 + DATA_ALIGN], *p = head;
    size_t extra_len = 0;
    if (local64) {
        /* In a local header the ZIP64 field must hold both sizes. */
        unsigned char *x = wr16(extra, EXTRA_ZIP64);
        x = wr16(x, 16);
        x = wr64(x, r.size);
        wr64(x, r.comp);
        extra_len = 20;
    }
    if (!deflate) {
        /* Pad with an "FB" block so name + extra end on a 64-byte boundary, as PyTorch does
         * (torch.load(mmap=True) slices tensor data straight out of the file). */
        uint64_t end = r.offset + LOCAL_LEN + name_len + extra_len + 4;
        unsigned pad = (unsigned)((DATA_ALIGN - end % DATA_ALIGN) % DATA_ALIGN);
        unsigned char *x = wr16(extra + extra_len, EXTRA_PAD);
        wr16(x, pad);
        memset(x + 2, 'Z', pad);
        extra_len += 4 + pad;
    }
    p = wr32(p, SIG_LOCAL);
    p = wr16(p, any64 ? VERSION_ZIP64 : deflate ? VERSION_DEFLATE : VERSION_STORED);
    p = wr16(p, FLAG_UTF8);
    p = wr16(p, r.method);
    p = wr16(p, DOS_TIME);
    p = wr16(p, DOS_DATE);
    p = wr32(p, r.crc);
    p = wr32(p, local64 ? MAX32 : (uint32_t)r.comp);
    p = wr32(p, local64 ? MAX32 : (uint32_t)r.size);
    p = wr16(p, (unsigned)name_len);
    wr16(p, (unsigned)extra_len);

    int rc = wwrite(w, head, sizeof(head), err);
    if (!rc)
        rc = wwrite(w, name, name_len, err);
    if (!rc)
        rc = wwrite(w, extra, extra_len, err);
    if (!rc)
        rc = wwrite(w, payload, (size_t)r.comp, err);
    free(packed);
    if (rc) {
        free(r.name);
        return rc;
    }
    w->recs[w->n] = r;
    index_put(&w->index, w->recs[w->n].name, w->n);
    w->n++;
    return 0;
}

static int write_central(npe_zip_writer *w, const wrec *r, npe_error *err)
{
    int force = (w->flags & NPE_ZIP_FORCE_ZIP64) != 0;
    int big_size = force || r->size >= MAX32, big_comp = force || r->comp >= MAX32;
    int big_off = force || r->offset >= MAX32;
    int local64 = force || r->size >= MAX32 || r->comp >= MAX32;
    int any64 = big_size || big_comp || big_off;
    size_t name_len = strlen(r->name);
    unsigned char head[CENTRAL_LEN], extra[4 + 24], *p = head, *x = extra + 4;
    if (big_size)
        x = wr64(x, r->size);
    if (big_comp)
        x = wr64(x, r->comp);
    if (big_off)
        x = wr64(x, r->offset);
    size_t extra_len = any64 ? (size_t)(x - extra) : 0;
    wr16(extra, EXTRA_ZIP64);
    wr16(extra + 2, (unsigned)(extra_len ? extra_len - 4 : 0));

    p = wr32(p, SIG_CENTRAL);
    p = wr16(p, VERSION_MADE_BY);
    p = wr16(p, (local64 || any64) ? VERSION_ZIP64 : r->method ? VERSION_DEFLATE : VERSION_STORED);
    p = wr16(p, FLAG_UTF8);
    p = wr16(p, r->method);
    p = wr16(p, DOS_TIME);
    p = wr16(p, DOS_DATE);
    p = wr32(p, r->crc);
    p = wr32(p, big_comp ? MAX32 : (uint32_t)r->comp);
    p = wr32(p, big_size ? MAX32 : (uint32_t)r->size);
    p = wr16(p, (unsigned)name_len);
    p = wr16(p, (unsigned)extra_len);
    p = wr16(p, 0); /* comment */
    p = wr16(p, 0); /* disk */
    p = wr16(p, 0); /* internal attributes */
    p = wr32(p, 0); /* external attributes */
    wr32(p, big_off ? MAX32 : (uint32_t)r->offset);
    int rc = wwrite(w, head, sizeof(head), err);
    if (!rc)
        rc = wwrite(w, r->name, name_len, err);
    if (!rc)
        rc = wwrite(w, extra, extra_len, err);
    return rc;
}

int npe_zip_writer_finish(npe_zip_writer *w, npe_error *err)
{
    if (!w)
        return ZERR(NPE_EINVAL, "npe_zip_writer_finish: writer is NULL");
    int rc = 0;
    if (w->failed) {
        rc = ZERR(NPE_EIO, "%s: an earlier write failed; nothing was written", w->af.path);
        goto out_abort;
    }
    uint64_t cd_off = w->af.written;
    for (size_t i = 0; i < w->n && !rc; i++)
        rc = write_central(w, &w->recs[i], err);
    if (rc)
        goto out_abort;
    uint64_t cd_size = w->af.written - cd_off, z64_off = w->af.written, n = w->n;

    unsigned char tail[Z64_EOCD_LEN + Z64_LOCATOR_LEN + EOCD_LEN], *p = tail;
    p = wr32(p, SIG_Z64_EOCD);
    p = wr64(p, Z64_EOCD_LEN - 12);
    p = wr16(p, VERSION_MADE_BY);
    p = wr16(p, VERSION_ZIP64);
    p = wr32(p, 0); /* this disk */
    p = wr32(p, 0); /* disk with the directory */
    p = wr64(p, n);
    p = wr64(p, n);
    p = wr64(p, cd_size);
    p = wr64(p, cd_off);

    p = wr32(p, SIG_Z64_LOCATOR);
    p = wr32(p, 0);
    p = wr64(p, z64_off);
    p = wr32(p, 1); /* total disks */

    p = wr32(p, SIG_EOCD);
    p = wr16(p, 0);
    p = wr16(p, 0);
    p = wr16(p, n >= MAX16 ? MAX16 : (unsigned)n);
    p = wr16(p, n >= MAX16 ? MAX16 : (unsigned)n);
    p = wr32(p, cd_size >= MAX32 ? MAX32 : (uint32_t)cd_size);
    p = wr32(p, cd_off >= MAX32 ? MAX32 : (uint32_t)cd_off);
    wr16(p, 0); /* comment */
    rc = wwrite(w, tail, sizeof(tail), err);
    if (rc)
        goto out_abort;
    rc = npe_afile_commit(&w->af, err);
    writer_free(w);
    return rc;

out_abort:
    npe_zip_writer_abort(w);
    return rc;
}
