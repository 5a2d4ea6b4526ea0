/* Element types: names as PyTorch prints them and sizes in bytes. */
#include <npengine/npengine.h>

#include <assert.h>

static const struct {
    const char *name;
    size_t size;
} dtypes[] = {
    [NPE_DTYPE_F32] = {"float32", 4}, [NPE_DTYPE_F64] = {"float64", 8},
    [NPE_DTYPE_F16] = {"float16", 2}, [NPE_DTYPE_BF16] = {"bfloat16", 2},
    [NPE_DTYPE_I64] = {"int64", 8},   [NPE_DTYPE_I32] = {"int32", 4},
    [NPE_DTYPE_I16] = {"int16", 2},   [NPE_DTYPE_I8] = {"int8", 1},
    [NPE_DTYPE_U8] = {"uint8", 1},    [NPE_DTYPE_BOOL] = {"bool", 1},
    [NPE_DTYPE_C64] = {"complex64", 8}, [NPE_DTYPE_C128] = {"complex128", 16},
    [NPE_DTYPE_QINT8] = {"qint8", 1}, [NPE_DTYPE_QUINT8] = {"quint8", 1},
    [NPE_DTYPE_QINT32] = {"qint32", 4},
};
static_assert(sizeof(dtypes) / sizeof(dtypes[0]) == NPE_DTYPE_COUNT, "dtype table out of date");

NPE_API const char *npe_dtype_name(npe_dtype t)
{
    return (unsigned)t < NPE_DTYPE_COUNT ? dtypes[t].name : "?";
}

NPE_API size_t npe_dtype_size(npe_dtype t)
{
    return (unsigned)t < NPE_DTYPE_COUNT ? dtypes[t].size : 0;
}
