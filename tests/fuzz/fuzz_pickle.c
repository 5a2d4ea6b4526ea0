/* Fuzz target for the restricted pickle codec: load with a permissive-but-safe resolver, render
 * the tree, pickle it again and load that; every step must fail cleanly or succeed. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pickle.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Same allow-list as tests/test_pickle.c: PyTorch-like plus what protocol 2 needs for bytes. */
static npe_pkl_global_kind fuzz_resolver(void *user, const char *m, const char *n)
{
    (void)user;
    if (strcmp(m, "builtins") == 0) {
        if (strcmp(n, "set") == 0 || strcmp(n, "frozenset") == 0)
            return NPE_PKL_MAKE_SET;
        if (strcmp(n, "bytes") == 0)
            return NPE_PKL_CALLABLE;
        return NPE_PKL_DENY;
    }
    if (strcmp(m, "_codecs") == 0 && strcmp(n, "encode") == 0)
        return NPE_PKL_CALLABLE;
    if (strcmp(m, "collections") == 0 && strcmp(n, "OrderedDict") == 0)
        return NPE_PKL_MAKE_DICT;
    if (strcmp(m, "torch._utils") == 0 && strcmp(n, "_rebuild_tensor_v2") == 0)
        return NPE_PKL_CALLABLE;
    if (strcmp(m, "torch") == 0 && strcmp(n, "FloatStorage") == 0)
        return NPE_PKL_CLASS;
    if (strcmp(m, "torch") == 0 && strcmp(n, "float32") == 0)
        return NPE_PKL_VALUE;
    if (strncmp(m, "mymodels", 8) == 0 && (m[8] == '\0' || m[8] == '.'))
        return NPE_PKL_CLASS;
    return NPE_PKL_DENY;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    npe_error err;
    npe_pkl *doc = NULL;
    size_t used = 0;
    if (npe_pkl_load(data, size, "fuzz.pkl", fuzz_resolver, NULL, &doc, &used, &err) != 0) {
        if (doc || !err.msg[0])
            abort(); /* a failure must clear the output and say why */
        return 0;
    }
    if (used > size)
        abort();
    const npe_pv *root = npe_pkl_root(doc);
    char buf[512];
    /* repr escapes NULs, so the text is exactly the reported length, or cut at the buffer */
    size_t want = npe_pv_repr(root, buf, sizeof(buf));
    if (strlen(buf) != (want < sizeof(buf) ? want : sizeof(buf) - 1))
        abort();
    void *out = NULL;
    size_t n = 0;
    if (npe_pkl_dump(root, 0, &out, &n, &err) == 0) {
        npe_pkl *again = NULL;
        if (npe_pkl_load(out, n, "dumped.pkl", fuzz_resolver, NULL, &again, NULL, &err) == 0)
            npe_pv_repr(npe_pkl_root(again), buf, sizeof(buf));
        npe_pkl_free(again);
        free(out);
    }
    npe_pkl_free(doc);
    return 0;
}
