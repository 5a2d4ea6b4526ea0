/* Unit tests of the TorchScript code lexer and parser (importers/ts_lexer.c, ts_parser.c) on
 * snippets written like the code torch.jit.save prints, and on broken code: every error must name
 * the file and line. Expected values are read off the snippets by hand. */
#include <string.h>

#include "importers/ts_ast.h"
#include "testutil.h"

static npe_ts_module *parse_ok(const char *src)
{
    npe_ts_module *m = NULL;
    npe_error e = {0};
    int r = npe_ts_parse(src, strlen(src), "code/__torch__/t.py", &m, &e);
    CHECK_MSG(r == 0 && m, "parse failed: %s", e.msg);
    return m;
}

/* Text of a span in src. */
static int span_is(const char *src, npe_ts_loc loc, const char *want)
{
    return strlen(want) == loc.len && memcmp(src + loc.off, want, loc.len) == 0;
}

static void test_lexer(void)
{
    const char *src = "class A(Module):\n"
                      "  def f(self,\n"
                      "      x: Tensor) -> Tensor:  # comment\n"
                      "\n"
                      "    y = torch.f(x, 2., 1.0000000000000001e-05, 9223372036854775807, 'a\\'b', \"c\")\n"
                      "    return y\n";
    npe_ts_arena arena = {0};
    npe_ts_tokens t = {0};
    npe_error e = {0};
    CHECK_EQ_INT(npe_ts_lex(src, strlen(src), "t.py", &arena, &t, &e), 0);
    /* the bracketed newline in the def joins lines: no NEWLINE before "x" */
    int saw_indent = 0, saw_dedent = 0, newlines = 0, i_float = 0, i_big = 0, i_str = 0;
    for (size_t i = 0; i < t.n; i++) {
        const npe_ts_token *k = &t.v[i];
        if (k->kind == NPE_TK_INDENT)
            saw_indent++;
        if (k->kind == NPE_TK_DEDENT)
            saw_dedent++;
        if (k->kind == NPE_TK_NEWLINE)
            newlines++;
        if (k->kind == NPE_TK_FLOAT && k->fval == 2.0 && span_is(src, k->loc, "2."))
            i_float++;
        if (k->kind == NPE_TK_FLOAT && k->fval == 1.0000000000000001e-05)
            i_float++;
        if (k->kind == NPE_TK_INT && k->ival == INT64_MAX)
            i_big = 1;
        if (k->kind == NPE_TK_STR && k->slen == 3 && memcmp(k->sval, "a'b", 3) == 0)
            i_str++;
        if (k->kind == NPE_TK_STR && strcmp(k->sval, "c") == 0)
            i_str++;
        if (k->kind == NPE_TK_NAME && strcmp(k->sval, "x") == 0 && k->loc.line == 3)
            CHECK_EQ_INT(k->loc.col, 7);
    }
    CHECK_EQ_INT(saw_indent, 2);
    CHECK_EQ_INT(saw_dedent, 2);
    CHECK_EQ_INT(newlines, 4); /* class line, def (joined), y = ..., return */
    CHECK_EQ_INT(i_float, 2);
    CHECK(i_big);
    CHECK_EQ_INT(i_str, 2);
    CHECK_EQ_INT(t.v[t.n - 1].kind, NPE_TK_EOF);
    free(t.v);
    npe_ts_arena_free(&arena);
}

static void test_lexer_errors(void)
{
    static const struct {
        const char *src, *want;
    } cases[] = {
        {"x = 'abc\n", "t.py:1:5: string literal is not closed"},
        {"class A:\n    x = 1\n  y = 2\n", "t.py:3:3: indentation does not match"},
        {"x = (1,\n", "file ends inside brackets"},
        {"x = 1 $ 2\n", "t.py:1:7: unexpected character '$'"},
        {"x = 99999999999999999999\n", "does not fit 64 bits"},
        {"x = 12abc\n", "bad number literal"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        npe_ts_arena arena = {0};
        npe_ts_tokens t = {0};
        npe_error e = {0};
        int r = npe_ts_lex(cases[i].src, strlen(cases[i].src), "t.py", &arena, &t, &e);
        CHECK_MSG(r != 0 && strstr(e.msg, cases[i].want), "case %zu: rc %d msg '%s'", i, r, e.msg);
        CHECK(t.v == NULL);
        npe_ts_arena_free(&arena);
    }
    /* brackets nested past the limit: a limit error, not a stack overflow */
    size_t n = NPE_TS_MAX_DEPTH + 10;
    char *deep = malloc(2 * n + 8);
    memcpy(deep, "x = ", 4);
    for (size_t i = 0; i < n; i++)
        deep[4 + i] = '(';
    deep[4 + n] = '\0';
    npe_ts_arena arena = {0};
    npe_ts_tokens t = {0};
    npe_error e = {0};
    CHECK_EQ_INT(npe_ts_lex(deep, strlen(deep), "t.py", &arena, &t, &e), NPE_ELIMIT);
    npe_ts_arena_free(&arena);
    free(deep);
}

/* The shape of a traced module as 1.13 and 2.x print it. */
static const char traced[] =
    "class Conv2d(Module):\n"
    "  __parameters__ = [\"weight\", \"bias\", ]\n"
    "  __buffers__ = []\n"
    "  weight : Tensor\n"
    "  bias : Optional[Tensor]\n"
    "  training : bool\n"
    "  _is_full_backward_hook : Optional[bool]\n"
    "  __annotations__[\"0\"] = __torch__.torch.nn.modules.conv.Conv2d\n"
    "  def forward(self: __torch__.torch.nn.modules.conv.___torch_mangle_3.Conv2d,\n"
    "    argument_1: Tensor) -> Tuple[Tensor, List[Tensor]]:\n"
    "    weight = self.weight\n"
    "    _0 = getattr(self, \"0\")\n"
    "    input = torch._convolution(argument_1, weight, None, [1, 1], [1, 1], [1, 1], False, [0, 0], 384, False, False, True, True)\n"
    "    _1, _2, = torch.chunk(input, 2, 1)\n"
    "    _3 = torch.add(_1, _2, alpha=1)\n"
    "    _4 = torch.view(_3, [int(ops.prim.NumToTensor(torch.size(_3, 0))), -1, 8])\n"
    "    _5 = torch.slice(_4, 1, 0, 9223372036854775807, 1)\n"
    "    return (_5, [_1, _2])\n"
    "  def forward1(self: __torch__.X,\n"
    "    x: Tensor) -> Tensor:\n"
    "    return (self).forward(x, )\n";

static void test_traced_module(void)
{
    npe_ts_module *m = parse_ok(traced);
    if (!m)
        return;
    CHECK_EQ_INT(m->n_classes, 1);
    const npe_ts_class *c = npe_ts_find_class(m, "Conv2d");
    CHECK(c != NULL);
    if (!c)
        goto out;
    CHECK_EQ_INT(c->n_param_names, 2);
    CHECK_STR(c->param_names[0], "weight");
    CHECK_STR(c->param_names[1], "bias");
    CHECK_EQ_INT(c->n_buffer_names, 0);
    CHECK_EQ_INT(c->n_methods, 2);
    const npe_ts_method *f = npe_ts_find_method(c, "forward");
    CHECK(f && npe_ts_find_method(c, "forward1") && !npe_ts_find_method(c, "forward2"));
    if (!f)
        goto out;
    CHECK_EQ_INT(f->err_code, 0);
    CHECK_EQ_INT(f->n_params, 2);
    CHECK_STR(f->params[1].name, "argument_1");
    char buf[128];
    CHECK_STR(npe_ts_dotted(f->params[1].type, buf, sizeof buf), "Tensor");
    CHECK(f->ret_type && f->ret_type->kind == NPE_TS_E_SUBSCRIPT);
    CHECK_EQ_INT(f->n_body, 8);
    if (f->n_body != 8)
        goto out;

    /* weight = self.weight */
    const npe_ts_stmt *s = f->body[0];
    CHECK_EQ_INT(s->kind, NPE_TS_S_ASSIGN);
    CHECK_STR(s->targets[0], "weight");
    CHECK_STR(npe_ts_dotted(s->value, buf, sizeof buf), "self.weight");

    /* getattr(self, "0") */
    s = f->body[1];
    CHECK_EQ_INT(s->value->kind, NPE_TS_E_CALL);
    CHECK_STR(npe_ts_dotted(s->value->a, buf, sizeof buf), "getattr");
    CHECK_EQ_INT(s->value->n_items, 2);
    CHECK_EQ_INT(s->value->items[1]->kind, NPE_TS_E_STR);
    CHECK_STR(s->value->items[1]->sval, "0");

    /* the convolution: 13 arguments; the groups literal keeps its span and line */
    s = f->body[2];
    const npe_ts_expr *call = s->value;
    CHECK_EQ_INT(call->kind, NPE_TS_E_CALL);
    CHECK_STR(npe_ts_dotted(call->a, buf, sizeof buf), "torch._convolution");
    CHECK_EQ_INT(call->n_items, 13);
    CHECK(call->kwnames == NULL);
    if (call->n_items == 13) {
        const npe_ts_expr *groups = call->items[8];
        CHECK_EQ_INT(groups->kind, NPE_TS_E_INT);
        CHECK_EQ_INT(groups->ival, 384);
        CHECK(span_is(traced, groups->loc, "384"));
        CHECK_EQ_INT(groups->loc.line, 13);
        CHECK_EQ_INT(call->items[2]->kind, NPE_TS_E_NONE);
        CHECK_EQ_INT(call->items[3]->kind, NPE_TS_E_LIST);
        CHECK_EQ_INT(call->items[3]->n_items, 2);
        CHECK(span_is(traced, call->items[3]->loc, "[1, 1]"));
        CHECK_EQ_INT(call->items[6]->kind, NPE_TS_E_BOOL);
        CHECK_EQ_INT(call->items[6]->ival, 0);
    }
    CHECK_EQ_INT(call->loc.line, 13);

    /* _1, _2, = torch.chunk(...) */
    s = f->body[3];
    CHECK_EQ_INT(s->kind, NPE_TS_S_ASSIGN);
    CHECK_EQ_INT(s->unpack, 1);
    CHECK_EQ_INT(s->n_targets, 2);
    CHECK_STR(s->targets[1], "_2");

    /* keyword argument */
    s = f->body[4];
    CHECK(s->value->kwnames && s->value->kwnames[2] && strcmp(s->value->kwnames[2], "alpha") == 0);
    CHECK(s->value->kwnames && s->value->kwnames[0] == NULL);

    /* nested shape arithmetic and a negative literal whose span covers the sign */
    s = f->body[5];
    const npe_ts_expr *lst = s->value->items[1];
    CHECK_EQ_INT(lst->kind, NPE_TS_E_LIST);
    CHECK_EQ_INT(lst->n_items, 3);
    if (lst->n_items == 3) {
        CHECK_EQ_INT(lst->items[0]->kind, NPE_TS_E_CALL);
        CHECK_STR(npe_ts_dotted(lst->items[0]->a, buf, sizeof buf), "int");
        CHECK_STR(npe_ts_dotted(lst->items[0]->items[0]->a, buf, sizeof buf), "ops.prim.NumToTensor");
        CHECK_EQ_INT(lst->items[1]->kind, NPE_TS_E_INT);
        CHECK_EQ_INT(lst->items[1]->ival, -1);
        CHECK(span_is(traced, lst->items[1]->loc, "-1"));
        CHECK_EQ_INT(lst->items[2]->ival, 8);
    }
    s = f->body[6];
    CHECK_EQ_INT(s->value->items[3]->ival, INT64_MAX);

    /* return of a tuple holding a list */
    s = f->body[7];
    CHECK_EQ_INT(s->kind, NPE_TS_S_RETURN);
    CHECK_EQ_INT(s->value->kind, NPE_TS_E_TUPLE);
    CHECK_EQ_INT(s->value->n_items, 2);
    CHECK_EQ_INT(s->value->items[1]->kind, NPE_TS_E_LIST);

    /* (self).forward(x, ): a method call through a parenthesised name */
    const npe_ts_method *f1 = npe_ts_find_method(c, "forward1");
    if (f1 && f1->n_body == 1) {
        const npe_ts_expr *e = f1->body[0]->value;
        CHECK_EQ_INT(e->kind, NPE_TS_E_CALL);
        CHECK_EQ_INT(e->a->kind, NPE_TS_E_ATTR);
        CHECK_STR(e->a->name, "forward");
        CHECK_STR(npe_ts_dotted(e->a, buf, sizeof buf), "self.forward");
        CHECK_EQ_INT(e->n_items, 1);
    }
out:
    npe_ts_module_free(m);
}

/* Scripted code parses; its control flow becomes "unsupported" statements, and syntax the parser
 * does not know is kept as a per-method error, reported with file:line only if the method runs. */
static void test_scripted(void)
{
    const char *src = "op_version_set = 1\n"
                      "import __torch__.foo\n"
                      "class S(Module):\n"
                      "  def forward(self: __torch__.S,\n"
                      "    x: Tensor) -> Tensor:\n"
                      "    if bool(torch.gt(torch.sum(x), 0)):\n"
                      "      _0 = torch.mul(x, 2)\n"
                      "    else:\n"
                      "      _0 = x\n"
                      "    for i in range(3):\n"
                      "      x += 1\n"
                      "    return _0\n"
                      "  def helper(self: __torch__.S) -> int:\n"
                      "    y = [i for i in range(3)]\n"
                      "    return 1\n"
                      "  def after(self: __torch__.S) -> int:\n"
                      "    return 2\n"
                      "def free_fn(x: Tensor) -> Tensor:\n"
                      "  return x\n";
    npe_ts_module *m = parse_ok(src);
    if (!m)
        return;
    const npe_ts_class *c = npe_ts_find_class(m, "S");
    CHECK(c && c->n_methods == 3);
    CHECK_EQ_INT(m->n_functions, 1);
    if (!c || c->n_methods != 3)
        goto out;
    const npe_ts_method *f = npe_ts_find_method(c, "forward");
    CHECK(f && f->n_body == 4);
    if (f && f->n_body == 4) {
        CHECK_EQ_INT(f->body[0]->kind, NPE_TS_S_UNSUPPORTED);
        CHECK_STR(f->body[0]->what, "'if' statement");
        CHECK_EQ_INT(f->body[0]->loc.line, 6);
        CHECK_EQ_INT(f->body[1]->kind, NPE_TS_S_UNSUPPORTED);
        CHECK_STR(f->body[1]->what, "'else' statement");
        CHECK_STR(f->body[2]->what, "'for' statement");
        CHECK_EQ_INT(f->body[3]->kind, NPE_TS_S_RETURN);
    }
    const npe_ts_method *h = npe_ts_find_method(c, "helper");
    CHECK(h && h->err_code != 0);
    if (h && h->err_msg)
        CHECK_MSG(strstr(h->err_msg, "code/__torch__/t.py:14:") != NULL, "msg '%s'", h->err_msg);
    const npe_ts_method *a = npe_ts_find_method(c, "after");
    CHECK(a && a->err_code == 0 && a->n_body == 1);
out:
    npe_ts_module_free(m);
}

static void test_statements(void)
{
    const char *src = "class K(Module):\n"
                      "  def forward(self, x):\n"
                      "    pass\n"
                      "    self.y = x\n"
                      "    x[0] = x\n"
                      "    a = b = x\n"
                      "    z : int = 3\n"
                      "    torch.relu_(x)\n"
                      "    _6 = annotate(List[Tensor], [])\n"
                      "    _7 = -x\n"
                      "    _8 = a if b else c\n"
                      "    return\n";
    npe_ts_module *m = parse_ok(src);
    if (!m)
        return;
    const npe_ts_method *f = m->n_classes ? npe_ts_find_method(&m->classes[0], "forward") : NULL;
    CHECK(f && f->err_code == 0 && f->n_body == 10);
    if (f && f->n_body == 10) {
        CHECK_EQ_INT(f->body[0]->kind, NPE_TS_S_PASS);
        CHECK_STR(f->body[1]->what, "assignment to an attribute (a.b = ...)");
        CHECK_STR(f->body[2]->what, "assignment to a subscript (x[i] = ...)");
        CHECK_STR(f->body[3]->what, "chained assignment (a = b = ...)");
        CHECK_STR(f->body[4]->what, "annotated assignment");
        CHECK_EQ_INT(f->body[5]->kind, NPE_TS_S_EXPR);
        CHECK_EQ_INT(f->body[6]->kind, NPE_TS_S_ASSIGN);
        CHECK_EQ_INT(f->body[7]->value->kind, NPE_TS_E_UNARY);
        CHECK_EQ_INT(f->body[8]->value->kind, NPE_TS_E_OTHER);
        CHECK_EQ_INT(f->body[9]->kind, NPE_TS_S_RETURN);
        CHECK(f->body[9]->value == NULL);
        CHECK_EQ_INT(f->params[0].type == NULL, 1);
    }
    npe_ts_module_free(m);
}

static void test_parse_errors(void)
{
    static const struct {
        const char *src, *want;
    } cases[] = {
        {"class A(Module):\nx = 1\n", "t.py:2:1: expected an indented class body"},
        {"class (Module):\n  pass\n", "t.py:1:7: expected a class name"},
        {"class A(Module):\n  def f(self x):\n    pass\n", "t.py:2:14: expected ',' or ')' in the parameter list"},
        {"class A(Module):\n  def f(self):\n  pass\n", "t.py:3:3: expected an indented method body"},
        {"  x = 1\n", "expected a class or a function at the top level"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        npe_ts_module *m = NULL;
        npe_error e = {0};
        int r = npe_ts_parse(cases[i].src, strlen(cases[i].src), "code/t.py", &m, &e);
        CHECK_MSG(r != 0 && m == NULL && strstr(e.msg, cases[i].want), "case %zu: rc %d msg '%s'",
                  i, r, e.msg);
    }
    /* syntax errors inside a body stay with their method */
    const char *src = "class A(Module):\n  def f(self):\n    x = torch.add(1,\n      2 3)\n"
                      "  def g(self):\n    return 1\n";
    npe_ts_module *m = NULL;
    npe_error e = {0};
    CHECK_EQ_INT(npe_ts_parse(src, strlen(src), "code/t.py", &m, &e), 0);
    if (m) {
        const npe_ts_method *f = npe_ts_find_method(&m->classes[0], "f");
        CHECK(f && f->err_code == NPE_EFORMAT);
        if (f && f->err_msg)
            CHECK_MSG(strstr(f->err_msg, "code/t.py:4:9: expected ',' or ')'") != NULL, "'%s'",
                      f->err_msg);
        CHECK(npe_ts_find_method(&m->classes[0], "g") != NULL);
        npe_ts_module_free(m);
    }
    /* expressions nested past the limit */
    size_t n = NPE_TS_MAX_DEPTH + 5;
    char *deep = malloc(4 * n + 64);
    size_t k = (size_t)sprintf(deep, "class A(Module):\n  def f(self):\n    return ");
    for (size_t i = 0; i < n / 2; i++)
        k += (size_t)sprintf(deep + k, "-f(");
    deep[k++] = '1';
    for (size_t i = 0; i < n / 2; i++)
        deep[k++] = ')';
    deep[k++] = '\n';
    deep[k] = '\0';
    m = NULL;
    CHECK_EQ_INT(npe_ts_parse(deep, k, "code/t.py", &m, &e), 0);
    if (m) {
        const npe_ts_method *f = npe_ts_find_method(&m->classes[0], "f");
        CHECK(f && f->err_code == NPE_ELIMIT);
        npe_ts_module_free(m);
    }
    free(deep);
}

static void test_expr(void)
{
    npe_ts_arena a = {0};
    npe_ts_expr *e = NULL;
    npe_error err = {0};
    const char *s = "[1, 1]";
    CHECK_EQ_INT(npe_ts_parse_expr(s, strlen(s), "spec", &a, &e, &err), 0);
    CHECK(e && e->kind == NPE_TS_E_LIST && e->n_items == 2);
    s = "\"constant\"";
    CHECK_EQ_INT(npe_ts_parse_expr(s, strlen(s), "spec", &a, &e, &err), 0);
    CHECK(e && e->kind == NPE_TS_E_STR && strcmp(e->sval, "constant") == 0);
    s = "-1.";
    CHECK_EQ_INT(npe_ts_parse_expr(s, strlen(s), "spec", &a, &e, &err), 0);
    CHECK(e && e->kind == NPE_TS_E_FLOAT && e->fval == -1.0);
    s = "1 2";
    CHECK(npe_ts_parse_expr(s, strlen(s), "spec", &a, &e, &err) != 0);
    CHECK(strstr(err.msg, "spec:1:3") != NULL);
    npe_ts_arena_free(&a);
}

int main(void)
{
    test_lexer();
    test_lexer_errors();
    test_traced_module();
    test_scripted();
    test_statements();
    test_parse_errors();
    test_expr();
    return tu_finish("ts_parser");
}
