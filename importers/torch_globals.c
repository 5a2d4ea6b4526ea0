/* Which Python globals a PyTorch pickle may name, and what each means to the unpickler; plus
 * the tables from PyTorch's storage classes and dtype names to npe_dtype.
 *
 * Why an allow-list of this shape is safe: the unpickler executes nothing. A CALLABLE yields a
 * CALL record that only our own code interprets (a tensor rebuild, a TorchScript list helper);
 * MAKE_DICT/MAKE_SET build plain containers; VALUE is a name; CLASS lets NEWOBJ build an inert
 * OBJECT record holding the pickled state, and REDUCE of a CLASS is refused by the unpickler. So
 * a user class path (__main__.Net, torchvision.models.resnet.ResNet) costs nothing to accept,
 * while modules whose very purpose is running code are refused by name, so the user learns the
 * file asks for os.system instead of getting a half-built model. */
#include "torch_internal.h"

#include <string.h>

/* Top-level modules never accepted, whatever the name: they exist to run code, reach the file
 * system or network, or rebuild arbitrary objects (numpy's reconstructors included). */
static const char *const deny_top[] = {
    "os", "posix", "nt", "subprocess", "sys", "builtins", "__builtin__", "shutil", "socket",
    "importlib", "pickle", "_pickle", "codecs", "_codecs", "runpy", "ctypes", "pty",
    "webbrowser", "marshal", "types", "operator", "functools", "io", "threading",
    "multiprocessing", "signal", "pathlib", "tempfile", "glob", "code", "pdb", "timeit",
    "asyncio", "http", "urllib", "requests", "platform", "gc", "inspect", "numpy", "dill",
    "copyreg", "copy_reg", "copy", "posixpath", "ntpath", "shelve", "sqlite3", "zipimport",
    "pkgutil", "collections", "cloudpickle", "joblib", "yaml", "ftplib", "smtplib", "telnetlib",
    "_io", "_thread", "_posixsubprocess", "_winapi", "msvcrt", "winreg", "_ctypes", "resource",
    "fcntl", "select", "mmap", "atexit", "site", "sysconfig", "distutils", "setuptools",
    "pip", "email", "xmlrpc", "logging", "weakref", "abc", "string", "re",
};

typedef struct {
    const char *module, *name;
    npe_pkl_global_kind kind;
} global_rule;

/* Exact names, checked before the deny list (builtins.set is fine, builtins.eval is not). */
static const global_rule exact[] = {
    /* tensor rebuild functions: interpreted by torch_load.c, never called */
    {"torch._utils", "_rebuild_tensor", NPE_PKL_CALLABLE},
    {"torch._utils", "_rebuild_tensor_v2", NPE_PKL_CALLABLE},
    {"torch._utils", "_rebuild_tensor_v3", NPE_PKL_CALLABLE},
    {"torch._utils", "_rebuild_parameter", NPE_PKL_CALLABLE},
    {"torch._utils", "_rebuild_parameter_with_state", NPE_PKL_CALLABLE},
    {"torch._tensor", "_rebuild_from_type_v2", NPE_PKL_CALLABLE},
    {"torch.nn.parameter", "Parameter", NPE_PKL_CALLABLE},
    {"torch", "Size", NPE_PKL_CALLABLE},
    {"torch", "device", NPE_PKL_CALLABLE},
    /* TorchScript's typed-container helpers: identity functions for us */
    {"torch.jit._pickle", "build_intlist", NPE_PKL_CALLABLE},
    {"torch.jit._pickle", "build_floatlist", NPE_PKL_CALLABLE},
    {"torch.jit._pickle", "build_boollist", NPE_PKL_CALLABLE},
    {"torch.jit._pickle", "build_tensorlist", NPE_PKL_CALLABLE},
    {"torch.jit._pickle", "build_doublelist", NPE_PKL_CALLABLE},
    {"torch.jit._pickle", "restore_type_tag", NPE_PKL_CALLABLE},
    /* containers */
    {"collections", "OrderedDict", NPE_PKL_MAKE_DICT},
    {"builtins", "dict", NPE_PKL_MAKE_DICT},
    {"__builtin__", "dict", NPE_PKL_MAKE_DICT},
    {"builtins", "set", NPE_PKL_MAKE_SET},
    {"__builtin__", "set", NPE_PKL_MAKE_SET},
    {"builtins", "frozenset", NPE_PKL_MAKE_SET},
    {"__builtin__", "frozenset", NPE_PKL_MAKE_SET},
    /* plain enum-like values */
    {"torch", "contiguous_format", NPE_PKL_VALUE},
    {"torch", "channels_last", NPE_PKL_VALUE},
    {"torch", "channels_last_3d", NPE_PKL_VALUE},
    {"torch", "preserve_format", NPE_PKL_VALUE},
    {"torch", "strided", NPE_PKL_VALUE},
    {"torch", "sparse_coo", NPE_PKL_VALUE},
    {"torch", "sparse_csr", NPE_PKL_VALUE},
    {"torch", "per_tensor_affine", NPE_PKL_VALUE},
    {"torch", "per_channel_affine", NPE_PKL_VALUE},
    {"torch", "per_tensor_symmetric", NPE_PKL_VALUE},
    {"torch", "per_channel_symmetric", NPE_PKL_VALUE},
    {"torch", "per_channel_affine_float_qparams", NPE_PKL_VALUE},
};

static const struct {
    const char *name;
    npe_dtype dtype;
} storage_names[] = {
    {"FloatStorage", NPE_DTYPE_F32},       {"DoubleStorage", NPE_DTYPE_F64},
    {"HalfStorage", NPE_DTYPE_F16},        {"BFloat16Storage", NPE_DTYPE_BF16},
    {"LongStorage", NPE_DTYPE_I64},        {"IntStorage", NPE_DTYPE_I32},
    {"ShortStorage", NPE_DTYPE_I16},       {"CharStorage", NPE_DTYPE_I8},
    {"ByteStorage", NPE_DTYPE_U8},         {"BoolStorage", NPE_DTYPE_BOOL},
    {"ComplexFloatStorage", NPE_DTYPE_C64}, {"ComplexDoubleStorage", NPE_DTYPE_C128},
    {"QInt8Storage", NPE_DTYPE_QINT8},     {"QUInt8Storage", NPE_DTYPE_QUINT8},
    {"QInt32Storage", NPE_DTYPE_QINT32},
};

/* Every dtype attribute of the torch module, with its aliases. Names whose dtype we cannot hold
 * are still VALUEs (a harmless name); only a tensor using one is refused, later. */
static const struct {
    const char *name;
    int dtype; /* -1: a dtype we do not support */
} dtype_names[] = {
    {"float32", NPE_DTYPE_F32},   {"float", NPE_DTYPE_F32},      {"float64", NPE_DTYPE_F64},
    {"double", NPE_DTYPE_F64},    {"float16", NPE_DTYPE_F16},    {"half", NPE_DTYPE_F16},
    {"bfloat16", NPE_DTYPE_BF16}, {"int64", NPE_DTYPE_I64},      {"long", NPE_DTYPE_I64},
    {"int32", NPE_DTYPE_I32},     {"int", NPE_DTYPE_I32},        {"int16", NPE_DTYPE_I16},
    {"short", NPE_DTYPE_I16},     {"int8", NPE_DTYPE_I8},        {"uint8", NPE_DTYPE_U8},
    {"bool", NPE_DTYPE_BOOL},     {"complex64", NPE_DTYPE_C64},  {"cfloat", NPE_DTYPE_C64},
    {"complex128", NPE_DTYPE_C128}, {"cdouble", NPE_DTYPE_C128}, {"qint8", NPE_DTYPE_QINT8},
    {"quint8", NPE_DTYPE_QUINT8}, {"qint32", NPE_DTYPE_QINT32},
    {"complex32", -1}, {"chalf", -1}, {"quint4x2", -1}, {"quint2x4", -1}, {"uint16", -1},
    {"uint32", -1}, {"uint64", -1}, {"float8_e4m3fn", -1}, {"float8_e5m2", -1},
    {"float8_e4m3fnuz", -1}, {"float8_e5m2fnuz", -1}, {"float8_e8m0fnu", -1},
    {"float4_e2m1fn_x2", -1}, {"bits8", -1}, {"bits16", -1}, {"bits1x8", -1}, {"bits2x4", -1},
    {"bits4x2", -1}, {"int1", -1}, {"int2", -1}, {"int3", -1}, {"int4", -1}, {"int5", -1},
    {"int6", -1}, {"int7", -1}, {"uint1", -1}, {"uint2", -1}, {"uint3", -1}, {"uint4", -1},
    {"uint5", -1}, {"uint6", -1}, {"uint7", -1},
};

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

static int is_ident(const char *s, size_t n)
{
    if (n == 0 || n > 256)
        return 0;
    if (!((s[0] >= 'A' && s[0] <= 'Z') || (s[0] >= 'a' && s[0] <= 'z') || s[0] == '_'))
        return 0;
    for (size_t i = 1; i < n; i++) {
        char c = s[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '_'))
            return 0;
    }
    return 1;
}

/* A dotted path of identifiers ("torch.nn.modules.conv"). */
static int is_dotted(const char *s)
{
    size_t len = strlen(s);
    if (len == 0 || len > 1024)
        return 0;
    const char *p = s;
    for (;;) {
        const char *dot = strchr(p, '.');
        size_t n = dot ? (size_t)(dot - p) : strlen(p);
        if (!is_ident(p, n))
            return 0;
        if (!dot)
            return 1;
        p = dot + 1;
    }
}

static int starts_with_module(const char *module, const char *top)
{
    size_t n = strlen(top);
    return strncmp(module, top, n) == 0 && (module[n] == '\0' || module[n] == '.');
}

int npe_torch_storage_dtype(const char *module, const char *name, npe_dtype *dt)
{
    if (!module || !name || (strcmp(module, "torch") != 0 && strcmp(module, "torch.cuda") != 0))
        return 0;
    for (size_t i = 0; i < COUNT(storage_names); i++)
        if (strcmp(name, storage_names[i].name) == 0) {
            if (dt)
                *dt = storage_names[i].dtype;
            return 1;
        }
    return 0;
}

int npe_torch_is_untyped_storage(const char *module, const char *name)
{
    /* 2.x pickles it as torch.storage.UntypedStorage */
    return module && name && (strcmp(module, "torch") == 0 || strcmp(module, "torch.storage") == 0) &&
           strcmp(name, "UntypedStorage") == 0;
}

const char *npe_torch_storage_name(npe_dtype dt)
{
    for (size_t i = 0; i < COUNT(storage_names); i++)
        if (storage_names[i].dtype == dt)
            return storage_names[i].name;
    return NULL;
}

static int dtype_index(const char *module, const char *name)
{
    if (!module || !name || strcmp(module, "torch") != 0)
        return -1;
    for (size_t i = 0; i < COUNT(dtype_names); i++)
        if (strcmp(name, dtype_names[i].name) == 0)
            return (int)i;
    return -1;
}

int npe_torch_dtype_global(const char *module, const char *name, npe_dtype *dt)
{
    int i = dtype_index(module, name);
    if (i < 0 || dtype_names[i].dtype < 0)
        return 0;
    if (dt)
        *dt = (npe_dtype)dtype_names[i].dtype;
    return 1;
}

npe_pkl_global_kind npe_torch_resolve_global(void *user, const char *module, const char *name)
{
    (void)user;
    if (!module || !name || !is_dotted(module) || !is_ident(name, strlen(name)))
        return NPE_PKL_DENY;
    for (size_t i = 0; i < COUNT(exact); i++)
        if (strcmp(module, exact[i].module) == 0 && strcmp(name, exact[i].name) == 0)
            return exact[i].kind;
    for (size_t i = 0; i < COUNT(deny_top); i++)
        if (starts_with_module(module, deny_top[i]))
            return NPE_PKL_DENY;
    if (dtype_index(module, name) >= 0)
        return NPE_PKL_VALUE;
    if (starts_with_module(module, "torch")) {
        /* torch itself is full of functions that act (torch.load, torch.hub, torch.save):
         * only classes (storages, modules, torch.Tensor) and the names listed above pass. */
        if (npe_torch_storage_dtype(module, name, NULL) || npe_torch_is_untyped_storage(module, name))
            return NPE_PKL_CLASS;
        if (name[0] >= 'A' && name[0] <= 'Z')
            return NPE_PKL_CLASS;
        /* modules keep activation functions as attributes (TransformerEncoderLayer's
         * activation=F.relu): a name that may be held, never called */
        if (strcmp(module, "torch.nn.functional") == 0)
            return NPE_PKL_VALUE;
        return NPE_PKL_DENY;
    }
    /* user and library model classes (__main__.Net, __torch__.*, torchvision.*, models.yolo) */
    return NPE_PKL_CLASS;
}
