// Native kernels for the wasm engine: convolutions (forward, data gradient, filter gradient) on
// oneDNN; training-mode batch norm and its gradient; the x2 upsampling and max-pool gradients. For
// tensors in the wasm backend's heap: JS hands over the heap's ArrayBuffer and, per tensor, its byte
// offset, element count and dtype, so nothing is copied: oneDNN reads and writes the tfjs tensors in
// place. Layouts are tfjs's: activations NHWC, filters HWIO ([kh, kw, in, out]). Filters are
// reordered into the blocked layout oneDNN's kernels want.
//
// Every entry point checks what it is handed before touching memory (argument types, dtype, each
// tensor's element count against the shape the kernel will address, offsets aligned and inside the
// heap, strides, pads and output sizes that agree) and throws a JS error with code
// SLFER_NATIVE_KERNEL naming the kernel and the shapes; src/engine/native/addon.ts turns it into a
// SlferError. Nothing here trusts the caller.
//
// One primitive set per shape is created on first use and cached for the life of the process
// (a training run sees a few dozen shapes).
#define _GNU_SOURCE
#define NAPI_VERSION 8
#include <node_api.h>
#include <oneapi/dnnl/dnnl.h>
#include <omp.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

// ---------------------------------------------------------------------------------------------
// Arguments: what JS hands over, checked before any memory is touched.

#define ERROR_CODE "SLFER_NATIVE_KERNEL"
// tfjs dtypes as JS encodes them (src/engine/kernels/wasm-heap.ts); every kernel here is float32.
enum { DTYPE_FLOAT32 = 0 };
// Largest value accepted for any dimension (tfjs shapes are int32); products are overflow-checked too.
#define MAX_DIM ((int64_t)1 << 31)

typedef struct {
  napi_env env;
  const char *kernel; // the tfjs kernel name, for messages
  napi_value argv[8];
  uint8_t *heap;
  size_t heap_len;
  const double *tensors; // [byte offset, elements, dtype] per tensor
  size_t n_tensors;
  char shape[192]; // the shapes the kernel was asked for, for messages
} Call;

// Throws "<kernel>: <problem> (<shapes>)" as a JS error with code SLFER_NATIVE_KERNEL; returns 0.
static int fail(Call *c, const char *fmt, ...) {
  char problem[320], msg[560];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(problem, sizeof problem, fmt, ap);
  va_end(ap);
  if (c->shape[0])
    snprintf(msg, sizeof msg, "%s: %s (%s)", c->kernel, problem, c->shape);
  else
    snprintf(msg, sizeof msg, "%s: %s", c->kernel, problem);
  napi_throw_error(c->env, ERROR_CODE, msg);
  return 0;
}

// Reads exactly argc arguments into c->argv.
static int args(Call *c, napi_callback_info info, size_t argc) {
  size_t got = 8;
  if (napi_get_cb_info(c->env, info, &got, c->argv, NULL, NULL) != napi_ok || got != argc)
    return fail(c, "expected %zu arguments, got %zu", argc, got);
  return 1;
}

// argv[at]: the heap (an ArrayBuffer); argv[at + 1]: a Float64Array of (byte offset, elements,
// dtype) for each of the n tensors the kernel takes.
static int heap_and_tensors(Call *c, size_t at, size_t n) {
  void *heap;
  if (napi_get_arraybuffer_info(c->env, c->argv[at], &heap, &c->heap_len) != napi_ok) return fail(c, "the heap must be an ArrayBuffer");
  c->heap = heap;
  napi_typedarray_type type;
  size_t len;
  void *data;
  bool is_typed = false;
  if (napi_is_typedarray(c->env, c->argv[at + 1], &is_typed) != napi_ok || !is_typed ||
      napi_get_typedarray_info(c->env, c->argv[at + 1], &type, &len, &data, NULL, NULL) != napi_ok || type != napi_float64_array || len != 3 * n)
    return fail(c, "the tensors must be a Float64Array of %zu (offset, elements, dtype per tensor)", 3 * n);
  c->tensors = data;
  c->n_tensors = n;
  return 1;
}

// A number argument that must be an integer in [lo, hi].
static int int_arg(Call *c, size_t i, const char *name, int64_t lo, int64_t hi, int64_t *out) {
  double v;
  if (napi_get_value_double(c->env, c->argv[i], &v) != napi_ok) return fail(c, "%s must be a number", name);
  if (!(v >= (double)lo && v <= (double)hi) || v != floor(v)) return fail(c, "%s = %g is not an integer in %lld..%lld", name, v, (long long)lo, (long long)hi);
  *out = (int64_t)v;
  return 1;
}

// An Int32Array argument of exactly n entries, copied out as int64 so later arithmetic cannot overflow.
static int dims_arg(Call *c, size_t i, size_t n, int64_t *out) {
  napi_typedarray_type type;
  size_t len;
  void *data;
  bool is_typed = false;
  if (napi_is_typedarray(c->env, c->argv[i], &is_typed) != napi_ok || !is_typed ||
      napi_get_typedarray_info(c->env, c->argv[i], &type, &len, &data, NULL, NULL) != napi_ok || type != napi_int32_array || len != n)
    return fail(c, "dims must be an Int32Array of %zu", n);
  for (size_t k = 0; k < n; k++) out[k] = ((const int32_t *)data)[k];
  return 1;
}

// a*b*c*d, or -1 when any factor is out of 0..MAX_DIM (so the product fits in int64).
static int64_t count4(int64_t a, int64_t b, int64_t cc, int64_t d) {
  const int64_t f[4] = {a, b, cc, d};
  int64_t n = 1;
  for (int i = 0; i < 4; i++) {
    if (f[i] < 0 || f[i] > MAX_DIM || __builtin_mul_overflow(n, f[i], &n)) return -1;
  }
  return n;
}

// Tensor i of the call, which the kernel will address as `want` float32 elements: its dtype, its
// element count and its byte range, which must be 4-byte aligned and lie inside the heap.
static float *tensor(Call *c, size_t i, const char *name, int64_t want) {
  if (i >= c->n_tensors) return fail(c, "%s: no tensor %zu in a list of %zu", name, i, c->n_tensors), NULL;
  const double off = c->tensors[3 * i], n = c->tensors[3 * i + 1], dtype = c->tensors[3 * i + 2];
  if (dtype != DTYPE_FLOAT32) return fail(c, "%s has dtype code %g; this kernel takes float32 only", name, dtype), NULL;
  if (!(n >= 0 && n <= 9007199254740991.0) || n != floor(n)) return fail(c, "%s: element count %g is not a non-negative integer", name, n), NULL;
  if (want < 0) return fail(c, "%s: its shape has a dimension outside 0..2^31", name), NULL;
  if ((int64_t)n != want) return fail(c, "%s has %.0f elements but its shape needs %lld", name, n, (long long)want), NULL;
  if (!(off >= 0 && off <= 9007199254740991.0) || off != floor(off)) return fail(c, "%s: byte offset %g is not a non-negative integer", name, off), NULL;
  const uint64_t o = (uint64_t)off, bytes = 4 * (uint64_t)want;
  if (o % 4 != 0) return fail(c, "%s: byte offset %llu is not 4-byte aligned", name, (unsigned long long)o), NULL;
  if (o > c->heap_len || bytes > c->heap_len - o)
    return fail(c, "%s: bytes %llu..%llu lie outside the %zu-byte heap", name, (unsigned long long)o, (unsigned long long)(o + bytes), c->heap_len), NULL;
  return (float *)(c->heap + o);
}

// ---------------------------------------------------------------------------------------------
// oneDNN convolutions.

enum { OP_FORWARD = 0, OP_BACKWARD_DATA = 1, OP_BACKWARD_FILTER = 2 };
static const char *const CONV_KERNEL[3] = {"Conv2D", "Conv2DBackpropInput", "Conv2DBackpropFilter"};
// dims: N H W C KH KW OC OH OW strideH strideW dilationH dilationW padTop padLeft padBottom padRight
#define NDIMS 17

typedef struct Entry {
  int op;
  int64_t dims[NDIMS];
  dnnl_primitive_t prim;
  // Memories whose data handle is set per call (user layout) and the filter in oneDNN's layout.
  dnnl_memory_t act_in, act_out, user_w, blocked_w, scratch;
  size_t scratch_bytes;
  void *blocked_w_buf;
  dnnl_primitive_t reorder; // user_w -> blocked_w (forward, backward data) or back (backward filter)
  struct Entry *next;
} Entry;

static dnnl_engine_t engine;
static dnnl_stream_t stream;
static dnnl_primitive_attr_t user_scratchpad;
static Entry *cache;
static char last_error[256];

#define CHECK(call)                                                                       \
  do {                                                                                    \
    dnnl_status_t s_ = (call);                                                            \
    if (s_ != dnnl_success) {                                                             \
      snprintf(last_error, sizeof last_error, "oneDNN %s failed (status %d)", #call, s_); \
      return NULL;                                                                        \
    }                                                                                     \
  } while (0)

static int init_engine(void) {
  if (engine) return 1;
  if (dnnl_engine_create(&engine, dnnl_cpu, 0) != dnnl_success) return 0;
  if (dnnl_stream_create(&stream, engine, dnnl_stream_default_flags) != dnnl_success) return 0;
  if (dnnl_primitive_attr_create(&user_scratchpad) != dnnl_success) return 0;
  if (dnnl_primitive_attr_set_scratchpad_mode(user_scratchpad, dnnl_scratchpad_mode_user) != dnnl_success) return 0;
  return 1;
}

// One scratchpad serves every convolution (calls are serial). Each call gets the last `bytes` of it,
// right below a PROT_NONE page, so a kernel that writes past its scratchpad faults at that write
// instead of silently corrupting the process heap (see known_broken).
static uint8_t *scratch_map; // the mapping: scratch_cap accessible bytes, then the guard page
static size_t scratch_cap;

static uint8_t *scratchpad(size_t bytes) {
  const size_t need = (bytes + 63) / 64 * 64, page = (size_t)sysconf(_SC_PAGESIZE);
  if (need > scratch_cap) {
    const size_t usable = (need + page - 1) / page * page;
    uint8_t *m = mmap(NULL, usable + page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) return NULL;
    if (mprotect(m + usable, page, PROT_NONE) != 0) return munmap(m, usable + page), NULL;
    if (scratch_map) munmap(scratch_map, scratch_cap + page);
    scratch_map = m;
    scratch_cap = usable;
  }
  return scratch_map + scratch_cap - need;
}

// Implementations of oneDNN (2.6 up to at least 3.12) known to write outside their buffers for a
// shape, which are passed over for the next one oneDNN offers:
// - jit_1x1 backward weights with a strided 1x1 convolution (reduce-to-unit-stride), an nhwc source
//   and fewer input channels than its channel block (16 with AVX-512, 8 with AVX2): it addresses its
//   per-thread workspace as sp * ic_block but books only spatial * IC elements, so the last thread
//   writes past the scratchpad (uxlfoundation/oneDNN#6035). This is the heap corruption a width-0.125
//   model hit on AVX-512 machines at odd batch sizes (layer2's 8-channel downsample).
static int known_broken(int op, const int64_t *d, const char *impl) {
  const int64_t C = d[3], KH = d[4], KW = d[5], sh = d[9], sw = d[10];
  if (op == OP_BACKWARD_FILTER && KH == 1 && KW == 1 && (sh > 1 || sw > 1) && C < 16 && strncmp(impl, "jit_1x1:", 8) == 0) return 1;
  return 0;
}

// The first implementation oneDNN offers for `desc` that is not known_broken.
static dnnl_status_t create_pd(dnnl_primitive_desc_t *pd, const_dnnl_op_desc_t desc, const_dnnl_primitive_desc_t hint, int op, const int64_t *d) {
  dnnl_primitive_desc_iterator_t it;
  dnnl_status_t s = dnnl_primitive_desc_iterator_create(&it, desc, user_scratchpad, engine, hint);
  if (s != dnnl_success) return s;
  s = dnnl_unimplemented;
  do {
    dnnl_primitive_desc_t cand = dnnl_primitive_desc_iterator_fetch(it);
    if (!cand) break;
    const char *impl = "";
    dnnl_primitive_desc_query(cand, dnnl_query_impl_info_str, 0, &impl);
    if (!known_broken(op, d, impl)) {
      *pd = cand;
      s = dnnl_success;
      break;
    }
    dnnl_primitive_desc_destroy(cand);
  } while (dnnl_primitive_desc_iterator_next(it) == dnnl_success);
  dnnl_primitive_desc_iterator_destroy(it);
  return s;
}

static Entry *build(int op, const int64_t *d) {
  const int64_t N = d[0], H = d[1], W = d[2], C = d[3], KH = d[4], KW = d[5], OC = d[6], OH = d[7], OW = d[8];
  dnnl_dims_t src_dims = {N, C, H, W}, dst_dims = {N, OC, OH, OW}, w_dims = {OC, C, KH, KW};
  dnnl_dims_t strides = {d[9], d[10]}, dil = {d[11] - 1, d[12] - 1}, pl = {d[13], d[14]}, pr = {d[15], d[16]};
  dnnl_memory_desc_t src_md, dst_md, w_any, w_user;
  CHECK(dnnl_memory_desc_init_by_tag(&src_md, 4, src_dims, dnnl_f32, dnnl_nhwc));
  CHECK(dnnl_memory_desc_init_by_tag(&dst_md, 4, dst_dims, dnnl_f32, dnnl_nhwc));
  CHECK(dnnl_memory_desc_init_by_tag(&w_any, 4, w_dims, dnnl_f32, dnnl_format_tag_any));
  CHECK(dnnl_memory_desc_init_by_tag(&w_user, 4, w_dims, dnnl_f32, dnnl_hwio));

  // Backward primitives need the forward one as a hint.
  dnnl_convolution_desc_t fwd_d;
  CHECK(dnnl_dilated_convolution_forward_desc_init(&fwd_d, dnnl_forward_training, dnnl_convolution_direct, &src_md, &w_any, NULL,
                                                   &dst_md, strides, dil, pl, pr));
  dnnl_primitive_desc_t fwd_pd, pd;
  CHECK(create_pd(&fwd_pd, &fwd_d, NULL, OP_FORWARD, d));
  if (op == OP_FORWARD) {
    pd = fwd_pd;
  } else {
    dnnl_convolution_desc_t bd;
    if (op == OP_BACKWARD_DATA)
      CHECK(dnnl_dilated_convolution_backward_data_desc_init(&bd, dnnl_convolution_direct, &src_md, &w_any, &dst_md, strides, dil, pl, pr));
    else
      CHECK(dnnl_dilated_convolution_backward_weights_desc_init(&bd, dnnl_convolution_direct, &src_md, &w_any, NULL, &dst_md, strides, dil,
                                                                pl, pr));
    CHECK(create_pd(&pd, &bd, fwd_pd, op, d));
    dnnl_primitive_desc_destroy(fwd_pd);
  }

  Entry *e = calloc(1, sizeof *e);
  if (!e) return NULL;
  e->op = op;
  memcpy(e->dims, d, sizeof e->dims);
  CHECK(dnnl_primitive_create(&e->prim, pd));
  const dnnl_memory_desc_t *scratch_md = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
  e->scratch_bytes = scratch_md ? dnnl_memory_desc_get_size(scratch_md) : 0;
  if (e->scratch_bytes) CHECK(dnnl_memory_create(&e->scratch, scratch_md, engine, DNNL_MEMORY_NONE));
  const dnnl_memory_desc_t *w_md = dnnl_primitive_desc_query_md(pd, op == OP_BACKWARD_FILTER ? dnnl_query_diff_weights_md : dnnl_query_weights_md, 0);
  const dnnl_memory_desc_t *in_md = op == OP_BACKWARD_DATA ? &dst_md : &src_md;
  const dnnl_memory_desc_t *out_md = op == OP_FORWARD ? &dst_md : &src_md;
  if (op != OP_BACKWARD_FILTER) {
    CHECK(dnnl_memory_create(&e->act_in, in_md, engine, DNNL_MEMORY_NONE));
    CHECK(dnnl_memory_create(&e->act_out, out_md, engine, DNNL_MEMORY_NONE));
  } else {
    CHECK(dnnl_memory_create(&e->act_in, &src_md, engine, DNNL_MEMORY_NONE));
    CHECK(dnnl_memory_create(&e->act_out, &dst_md, engine, DNNL_MEMORY_NONE)); // diff_dst, an input here
  }
  CHECK(dnnl_memory_create(&e->user_w, &w_user, engine, DNNL_MEMORY_NONE));
  if (!dnnl_memory_desc_equal(w_md, &w_user)) {
    size_t bytes = dnnl_memory_desc_get_size(w_md);
    e->blocked_w_buf = aligned_alloc(64, (bytes + 63) / 64 * 64);
    if (!e->blocked_w_buf) return NULL;
    CHECK(dnnl_memory_create(&e->blocked_w, w_md, engine, e->blocked_w_buf));
    dnnl_primitive_desc_t rpd;
    if (op == OP_BACKWARD_FILTER)
      CHECK(dnnl_reorder_primitive_desc_create(&rpd, w_md, engine, &w_user, engine, NULL));
    else
      CHECK(dnnl_reorder_primitive_desc_create(&rpd, &w_user, engine, w_md, engine, NULL));
    CHECK(dnnl_primitive_create(&e->reorder, rpd));
    dnnl_primitive_desc_destroy(rpd);
  }
  dnnl_primitive_desc_destroy(pd);
  return e;
}

static Entry *lookup(int op, const int64_t *d) {
  for (Entry *e = cache; e; e = e->next)
    if (e->op == op && memcmp(e->dims, d, sizeof e->dims) == 0) return e;
  Entry *e = build(op, d);
  if (e) {
    e->next = cache;
    cache = e;
  }
  return e;
}

#define RUN(call)                                                                         \
  do {                                                                                    \
    dnnl_status_t s_ = (call);                                                            \
    if (s_ != dnnl_success) {                                                             \
      snprintf(last_error, sizeof last_error, "oneDNN %s failed (status %d)", #call, s_); \
      return 0;                                                                           \
    }                                                                                     \
  } while (0)

static int reorder(dnnl_primitive_t r, dnnl_memory_t from, dnnl_memory_t to) {
  dnnl_exec_arg_t args[2] = {{DNNL_ARG_FROM, from}, {DNNL_ARG_TO, to}};
  RUN(dnnl_primitive_execute(r, stream, 2, args));
  return 1;
}

// a, b: inputs; out: result. forward: a=x, b=filter, out=y. backward data: a=dy, b=filter, out=dx.
// backward filter: a=x, b=dy, out=dfilter.
static int execute(Entry *e, float *a, float *b, float *out) {
  dnnl_memory_t w = e->blocked_w ? e->blocked_w : e->user_w;
  dnnl_exec_arg_t args[4];
  int n = 3;
  if (e->scratch) {
    uint8_t *s = scratchpad(e->scratch_bytes);
    if (!s) {
      snprintf(last_error, sizeof last_error, "cannot map a %zu-byte scratchpad", e->scratch_bytes);
      return 0;
    }
    RUN(dnnl_memory_set_data_handle(e->scratch, s));
    args[3] = (dnnl_exec_arg_t){DNNL_ARG_SCRATCHPAD, e->scratch};
    n = 4;
  }
  if (e->op == OP_BACKWARD_FILTER) {
    RUN(dnnl_memory_set_data_handle(e->act_in, a));
    RUN(dnnl_memory_set_data_handle(e->act_out, b));
    RUN(dnnl_memory_set_data_handle(e->user_w, out));
    args[0] = (dnnl_exec_arg_t){DNNL_ARG_SRC, e->act_in};
    args[1] = (dnnl_exec_arg_t){DNNL_ARG_DIFF_DST, e->act_out};
    args[2] = (dnnl_exec_arg_t){DNNL_ARG_DIFF_WEIGHTS, w};
    RUN(dnnl_primitive_execute(e->prim, stream, n, args));
    if (e->reorder && !reorder(e->reorder, e->blocked_w, e->user_w)) return 0;
  } else {
    RUN(dnnl_memory_set_data_handle(e->act_in, a));
    RUN(dnnl_memory_set_data_handle(e->user_w, b));
    RUN(dnnl_memory_set_data_handle(e->act_out, out));
    if (e->reorder && !reorder(e->reorder, e->user_w, e->blocked_w)) return 0;
    const int fwd = e->op == OP_FORWARD;
    args[0] = (dnnl_exec_arg_t){fwd ? DNNL_ARG_SRC : DNNL_ARG_DIFF_DST, e->act_in};
    args[1] = (dnnl_exec_arg_t){DNNL_ARG_WEIGHTS, w};
    args[2] = (dnnl_exec_arg_t){fwd ? DNNL_ARG_DST : DNNL_ARG_DIFF_SRC, e->act_out};
    RUN(dnnl_primitive_execute(e->prim, stream, n, args));
  }
  RUN(dnnl_stream_wait(stream));
  return 1;
}

// Output size of a convolution along one axis, or -1 when the padded input is smaller than the kernel.
static int64_t conv_out(int64_t in, int64_t k, int64_t stride, int64_t dil, int64_t pad0, int64_t pad1) {
  const int64_t span = in + pad0 + pad1 - ((k - 1) * dil + 1);
  return span < 0 ? -1 : span / stride + 1;
}

// conv(op, heap: ArrayBuffer, tensors: Float64Array(9): a, b, out, dims: Int32Array(17))
static napi_value Conv(napi_env env, napi_callback_info info) {
  Call c = {.env = env, .kernel = "conv"};
  int64_t op, d[NDIMS];
  if (!args(&c, info, 4) || !int_arg(&c, 0, "op", 0, 2, &op)) return NULL;
  c.kernel = CONV_KERNEL[op];
  if (!heap_and_tensors(&c, 1, 3) || !dims_arg(&c, 3, NDIMS, d)) return NULL;
  const int64_t N = d[0], H = d[1], W = d[2], C = d[3], KH = d[4], KW = d[5], OC = d[6], OH = d[7], OW = d[8];
  snprintf(c.shape, sizeof c.shape, "x %lldx%lldx%lldx%lld, filter %lldx%lldx%lldx%lld, y %lldx%lldx%lldx%lld, strides %lld,%lld, dilations %lld,%lld, pads %lld,%lld,%lld,%lld",
           (long long)N, (long long)H, (long long)W, (long long)C, (long long)KH, (long long)KW, (long long)C, (long long)OC, (long long)N, (long long)OH,
           (long long)OW, (long long)OC, (long long)d[9], (long long)d[10], (long long)d[11], (long long)d[12], (long long)d[13], (long long)d[14],
           (long long)d[15], (long long)d[16]);
  for (int i = 0; i < 13; i++)
    if (d[i] < 1) return fail(&c, "every size, stride and dilation must be at least 1"), NULL;
  for (int i = 13; i < 17; i++)
    if (d[i] < 0) return fail(&c, "pads must not be negative"), NULL;
  if (conv_out(H, KH, d[9], d[11], d[13], d[15]) != OH || conv_out(W, KW, d[10], d[12], d[14], d[16]) != OW)
    return fail(&c, "the output size does not follow from the input, filter, strides, dilations and pads (expected %lldx%lld)",
                (long long)conv_out(H, KH, d[9], d[11], d[13], d[15]), (long long)conv_out(W, KW, d[10], d[12], d[14], d[16])),
           NULL;
  const int64_t xn = count4(N, H, W, C), yn = count4(N, OH, OW, OC), wn = count4(KH, KW, C, OC);
  static const char *const names[3][3] = {{"x", "filter", "y"}, {"dy", "filter", "dx"}, {"x", "dy", "dfilter"}};
  const int64_t want[3][3] = {{xn, wn, yn}, {yn, wn, xn}, {xn, yn, wn}};
  float *p[3];
  for (int i = 0; i < 3; i++)
    if (!(p[i] = tensor(&c, i, names[op][i], want[op][i]))) return NULL;
  if (!init_engine()) return fail(&c, "oneDNN cannot create a CPU engine"), NULL;
  Entry *e = lookup((int)op, d);
  if (!e || !execute(e, p[0], p[1], p[2])) return fail(&c, "%s", last_error), NULL;
  return NULL;
}

// ---------------------------------------------------------------------------------------------
// Host kernels.

// Gradient of exact x2 bilinear upsampling with half-pixel centers (ST's decoder): along each axis,
// input pixel i received 0.75 of outputs 2i and 2i+1 and 0.25 of 2i-1 and 2i+2, edges replicated.
// dy [B, 2h, 2w, C] -> dx [B, h, w, C]; rows of the batch in parallel.
static void upsample2x_grad(const float *dy, float *dx, int64_t B, int64_t h, int64_t w, int64_t C) {
  const int64_t W2 = 2 * w, H2 = 2 * h, rowIn = W2 * C, rowOut = w * C;
#pragma omp parallel for schedule(static)
  for (int64_t bi = 0; bi < B * h; bi++) {
    const int64_t b = bi / h, i = bi % h;
    const float *base = dy + b * H2 * rowIn;
    const float *rows[4] = {base + (i > 0 ? 2 * i - 1 : 0) * rowIn, base + 2 * i * rowIn, base + (2 * i + 1) * rowIn,
                            base + (2 * i + 2 < H2 ? 2 * i + 2 : H2 - 1) * rowIn};
    float *o = dx + bi * rowOut;
    for (int64_t j = 0; j < w; j++) {
      const int64_t cols[4] = {(j > 0 ? 2 * j - 1 : 0) * C, 2 * j * C, (2 * j + 1) * C, (2 * j + 2 < W2 ? 2 * j + 2 : W2 - 1) * C};
      float *oj = o + j * C;
      for (int64_t k = 0; k < C; k++) {
        float r[4];
        for (int q = 0; q < 4; q++) r[q] = 0.25f * (rows[q][cols[0] + k] + rows[q][cols[3] + k]) + 0.75f * (rows[q][cols[1] + k] + rows[q][cols[2] + k]);
        oj[k] = 0.25f * (r[0] + r[3]) + 0.75f * (r[1] + r[2]);
      }
    }
  }
}

// Training-mode batch normalisation over the rows of an NHWC tensor ([rows, C], rows = N*H*W), and
// its closed-form gradient. Per-channel sums are accumulated in double, per thread, then combined.
static double *partials(int threads, int64_t C, int arrays) {
  return calloc((size_t)threads * arrays * C, sizeof(double));
}

static int bn_forward(const float *x, const float *gamma, const float *beta, float *y, float *mean, float *var, float *rstd, int64_t rows, int64_t C,
                      float eps) {
  const int T = omp_get_max_threads();
  double *acc = partials(T, C, 2);
  if (!acc) return 0;
#pragma omp parallel num_threads(T)
  {
    double *s = acc + (size_t)omp_get_thread_num() * 2 * C, *s2 = s + C;
#pragma omp for schedule(static)
    for (int64_t r = 0; r < rows; r++) {
      const float *xr = x + r * C;
      for (int64_t c = 0; c < C; c++) {
        s[c] += xr[c];
        s2[c] += (double)xr[c] * xr[c];
      }
    }
  }
  float *scale = malloc(C * sizeof(float));
  if (!scale) return free(acc), 0;
  for (int64_t c = 0; c < C; c++) {
    double s = 0, s2 = 0;
    for (int t = 0; t < T; t++) s += acc[(size_t)t * 2 * C + c], s2 += acc[(size_t)t * 2 * C + C + c];
    const double m = s / rows, v = s2 / rows - m * m > 0 ? s2 / rows - m * m : 0;
    mean[c] = (float)m;
    var[c] = (float)v;
    rstd[c] = (float)(1.0 / sqrt(v + eps));
    scale[c] = gamma[c] * rstd[c];
  }
  // (x - mean) first: x*scale - mean*scale loses digits when the variance is tiny.
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < rows; r++) {
    const float *xr = x + r * C;
    float *yr = y + r * C;
    for (int64_t c = 0; c < C; c++) yr[c] = (xr[c] - mean[c]) * scale[c] + beta[c];
  }
  free(scale);
  free(acc);
  return 1;
}

// dx = gamma*rstd * (dy - mean(dy) - xhat*mean(dy*xhat)), dgamma = sum(dy*xhat), dbeta = sum(dy).
static int bn_backward(const float *dy, const float *x, const float *mean, const float *rstd, const float *gamma, float *dx, float *dgamma, float *dbeta,
                       int64_t rows, int64_t C) {
  const int T = omp_get_max_threads();
  double *acc = partials(T, C, 2);
  if (!acc) return 0;
#pragma omp parallel num_threads(T)
  {
    double *sd = acc + (size_t)omp_get_thread_num() * 2 * C, *sdx = sd + C;
#pragma omp for schedule(static)
    for (int64_t r = 0; r < rows; r++) {
      const float *dr = dy + r * C, *xr = x + r * C;
      for (int64_t c = 0; c < C; c++) {
        sd[c] += dr[c];
        sdx[c] += (double)dr[c] * ((xr[c] - mean[c]) * rstd[c]);
      }
    }
  }
  float *k = malloc(3 * C * sizeof(float));
  if (!k) return free(acc), 0;
  float *a = k + C, *b = k + 2 * C;
  for (int64_t c = 0; c < C; c++) {
    double sd = 0, sdx = 0;
    for (int t = 0; t < T; t++) sd += acc[(size_t)t * 2 * C + c], sdx += acc[(size_t)t * 2 * C + C + c];
    dbeta[c] = (float)sd;
    dgamma[c] = (float)sdx;
    // dx = k*(dy - sd/n - xhat*sdx/n), xhat = (x - mean)*rstd: folded into k*dy + a*(x - mean) + b.
    k[c] = gamma[c] * rstd[c];
    const double kc = k[c];
    a[c] = (float)(-kc * sdx / rows * rstd[c]);
    b[c] = (float)(-kc * sd / rows);
  }
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < rows; r++) {
    const float *dr = dy + r * C, *xr = x + r * C;
    float *o = dx + r * C;
    for (int64_t c = 0; c < C; c++) o[c] = k[c] * dr[c] + a[c] * (xr[c] - mean[c]) + b[c];
  }
  free(k);
  free(acc);
  return 1;
}

// Gradient of 2-D max pooling (NHWC): each output's gradient goes to the first maximum of its window
// in row-major order (tfjs-backend-cpu's rule, which matters where ReLU leaves ties at 0); window
// cells outside the input are skipped. Images of the batch in parallel.
static int max_pool_grad(const float *x, const float *dy, float *dx, const int64_t *d) {
  const int64_t N = d[0], H = d[1], W = d[2], C = d[3], OH = d[4], OW = d[5], sh = d[6], sw = d[7], kh = d[8], kw = d[9], pt = d[10], pl = d[11];
  memset(dx, 0, (size_t)(N * H * W * C) * sizeof(float));
  int ok = 1;
#pragma omp parallel
  {
    float *best = malloc(C * sizeof(float));
    int64_t *at = malloc(C * sizeof(int64_t));
    if (!best || !at) {
#pragma omp atomic write
      ok = 0;
    }
#pragma omp for schedule(static)
    for (int64_t n = 0; n < N; n++) {
      if (!best || !at) continue;
      for (int64_t oh = 0; oh < OH; oh++)
        for (int64_t ow = 0; ow < OW; ow++) {
          for (int64_t c = 0; c < C; c++) best[c] = -INFINITY, at[c] = -1;
          for (int64_t i = 0; i < kh; i++) {
            const int64_t h = oh * sh - pt + i;
            if (h < 0 || h >= H) continue;
            for (int64_t j = 0; j < kw; j++) {
              const int64_t w = ow * sw - pl + j;
              if (w < 0 || w >= W) continue;
              const int64_t base = ((n * H + h) * W + w) * C;
              for (int64_t c = 0; c < C; c++)
                if (x[base + c] > best[c]) best[c] = x[base + c], at[c] = base + c;
            }
          }
          const float *g = dy + ((n * OH + oh) * OW + ow) * C;
          for (int64_t c = 0; c < C; c++)
            if (at[c] >= 0) dx[at[c]] += g[c];
        }
    }
    free(best);
    free(at);
  }
  return ok;
}

// argv[2], argv[3]: rows and channels of a [rows, C] batch-norm input; *big = rows * C.
static int rows_and_channels(Call *c, int64_t *rows, int64_t *C, int64_t *big) {
  if (!int_arg(c, 2, "rows", 1, MAX_DIM * MAX_DIM, rows) || !int_arg(c, 3, "channels", 1, MAX_DIM, C)) return 0;
  snprintf(c->shape, sizeof c->shape, "x [%lld rows, %lld channels]", (long long)*rows, (long long)*C);
  if (__builtin_mul_overflow(*rows, *C, big)) return fail(c, "rows x channels overflows");
  return 1;
}

// upsample2xGrad(heap, tensors: Float64Array(6): dy [B, 2h, 2w, C], dx [B, h, w, C], B, h, w, C)
static napi_value Upsample2xGrad(napi_env env, napi_callback_info info) {
  Call c = {.env = env, .kernel = "ResizeBilinearGrad (x2)"};
  int64_t B, h, w, C;
  if (!args(&c, info, 6) || !heap_and_tensors(&c, 0, 2) || !int_arg(&c, 2, "batch", 1, MAX_DIM, &B) || !int_arg(&c, 3, "height", 1, MAX_DIM, &h) ||
      !int_arg(&c, 4, "width", 1, MAX_DIM, &w) || !int_arg(&c, 5, "channels", 1, MAX_DIM, &C))
    return NULL;
  snprintf(c.shape, sizeof c.shape, "dy %lldx%lldx%lldx%lld, dx %lldx%lldx%lldx%lld", (long long)B, (long long)(2 * h), (long long)(2 * w), (long long)C, (long long)B,
           (long long)h, (long long)w, (long long)C);
  float *dy = tensor(&c, 0, "dy", count4(B, 2 * h, 2 * w, C)), *dx = dy ? tensor(&c, 1, "dx", count4(B, h, w, C)) : NULL;
  if (!dx) return NULL;
  upsample2x_grad(dy, dx, B, h, w, C);
  return NULL;
}

// batchNormForward(heap, tensors: Float64Array(21): x, gamma, beta, y, mean, variance, rstd, rows, C, epsilon)
static napi_value BatchNormForward(napi_env env, napi_callback_info info) {
  Call c = {.env = env, .kernel = "SlferBatchNormForward"};
  int64_t rows, C, big;
  double eps;
  if (!args(&c, info, 5) || !heap_and_tensors(&c, 0, 7) || !rows_and_channels(&c, &rows, &C, &big)) return NULL;
  if (napi_get_value_double(env, c.argv[4], &eps) != napi_ok || !(eps >= 0 && eps < 1)) return fail(&c, "epsilon must be a number in [0, 1)"), NULL;
  static const char *const names[7] = {"x", "gamma", "beta", "y", "mean", "variance", "rstd"};
  float *p[7];
  for (int i = 0; i < 7; i++)
    if (!(p[i] = tensor(&c, i, names[i], i == 0 || i == 3 ? big : C))) return NULL;
  if (!bn_forward(p[0], p[1], p[2], p[3], p[4], p[5], p[6], rows, C, (float)eps)) return fail(&c, "out of memory"), NULL;
  return NULL;
}

// batchNormBackward(heap, tensors: Float64Array(24): dy, x, mean, rstd, gamma, dx, dgamma, dbeta, rows, C)
static napi_value BatchNormBackward(napi_env env, napi_callback_info info) {
  Call c = {.env = env, .kernel = "SlferBatchNormBackward"};
  int64_t rows, C, big;
  if (!args(&c, info, 4) || !heap_and_tensors(&c, 0, 8) || !rows_and_channels(&c, &rows, &C, &big)) return NULL;
  static const char *const names[8] = {"dy", "x", "mean", "rstd", "gamma", "dx", "dgamma", "dbeta"};
  float *p[8];
  for (int i = 0; i < 8; i++)
    if (!(p[i] = tensor(&c, i, names[i], i == 0 || i == 1 || i == 5 ? big : C))) return NULL;
  if (!bn_backward(p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7], rows, C)) return fail(&c, "out of memory"), NULL;
  return NULL;
}

// maxPoolGrad(heap, tensors: Float64Array(9): x, dy, dx, dims: Int32Array(12): N H W C OH OW strideH strideW kh kw padTop padLeft)
static napi_value MaxPoolGrad(napi_env env, napi_callback_info info) {
  Call c = {.env = env, .kernel = "MaxPoolGrad"};
  int64_t d[12];
  if (!args(&c, info, 3) || !heap_and_tensors(&c, 0, 3) || !dims_arg(&c, 2, 12, d)) return NULL;
  snprintf(c.shape, sizeof c.shape, "x %lldx%lldx%lldx%lld, dy %lldx%lldx%lldx%lld, window %lldx%lld, strides %lld,%lld, pads %lld,%lld", (long long)d[0],
           (long long)d[1], (long long)d[2], (long long)d[3], (long long)d[0], (long long)d[4], (long long)d[5], (long long)d[3], (long long)d[8],
           (long long)d[9], (long long)d[6], (long long)d[7], (long long)d[10], (long long)d[11]);
  for (int i = 0; i < 10; i++)
    if (d[i] < 1) return fail(&c, "every size, stride and window side must be at least 1"), NULL;
  // A pad as large as the window would leave windows with no input cell in them.
  if (d[10] < 0 || d[11] < 0 || d[10] >= d[8] || d[11] >= d[9]) return fail(&c, "pads must be in 0..window-1"), NULL;
  const int64_t in = count4(d[0], d[1], d[2], d[3]), out = count4(d[0], d[4], d[5], d[3]);
  float *x = tensor(&c, 0, "x", in), *dy = x ? tensor(&c, 1, "dy", out) : NULL, *dx = dy ? tensor(&c, 2, "dx", in) : NULL;
  if (!dx) return NULL;
  if (!max_pool_grad(x, dy, dx, d)) return fail(&c, "out of memory"), NULL;
  return NULL;
}

static napi_value SetThreads(napi_env env, napi_callback_info info) {
  Call c = {.env = env, .kernel = "setThreads"};
  int64_t n;
  if (!args(&c, info, 1) || !int_arg(&c, 0, "threads", 1, 4096, &n)) return NULL;
  omp_set_num_threads((int)n);
  return NULL;
}

static napi_value Info(napi_env env, napi_callback_info info) {
  (void)info;
  const dnnl_version_t *v = dnnl_version();
  char buf[160];
  const int threads = omp_get_max_threads();
  snprintf(buf, sizeof buf, "oneDNN %d.%d.%d, %d thread%s", v->major, v->minor, v->patch, threads, threads == 1 ? "" : "s");
  napi_value s;
  napi_create_string_utf8(env, buf, NAPI_AUTO_LENGTH, &s);
  return s;
}

NAPI_MODULE_INIT() {
  napi_property_descriptor props[] = {
      {"conv", NULL, Conv, NULL, NULL, NULL, napi_default, NULL},
      {"upsample2xGrad", NULL, Upsample2xGrad, NULL, NULL, NULL, napi_default, NULL},
      {"maxPoolGrad", NULL, MaxPoolGrad, NULL, NULL, NULL, napi_default, NULL},
      {"batchNormForward", NULL, BatchNormForward, NULL, NULL, NULL, napi_default, NULL},
      {"batchNormBackward", NULL, BatchNormBackward, NULL, NULL, NULL, napi_default, NULL},
      {"setThreads", NULL, SetThreads, NULL, NULL, NULL, napi_default, NULL},
      {"info", NULL, Info, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  return exports;
}
