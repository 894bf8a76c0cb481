// Native kernels for the wasm engine: convolutions (forward, data gradient, filter gradient) on
// oneDNN; training-mode batch norm and its gradient; the x2 upsampling and max-pool gradients. For
// tensors in the wasm backend's heap: JS hands over the heap's ArrayBuffer and byte offsets, so nothing is copied:
// oneDNN reads and writes the tfjs tensors in place. Layouts are tfjs's: activations NHWC, filters
// HWIO ([kh, kw, in, out]). Filters are reordered into the blocked layout oneDNN's kernels want.
//
// One primitive set per shape is created on first use and cached for the life of the process
// (a training run sees a few dozen shapes).
#define NAPI_VERSION 8
#include <node_api.h>
#include <oneapi/dnnl/dnnl.h>
#include <omp.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { OP_FORWARD = 0, OP_BACKWARD_DATA = 1, OP_BACKWARD_FILTER = 2 };
// dims: N H W C KH KW OC OH OW strideH strideW dilationH dilationW padTop padLeft padBottom padRight
#define NDIMS 17

typedef struct Entry {
  int op;
  int32_t dims[NDIMS];
  dnnl_primitive_t prim;
  // Memories whose data handle is set per call (user layout) and the filter in oneDNN's layout.
  dnnl_memory_t act_in, act_out, user_w, blocked_w;
  void *blocked_w_buf;
  dnnl_primitive_t reorder; // user_w -> blocked_w (forward, backward data) or back (backward filter)
  struct Entry *next;
} Entry;

static dnnl_engine_t engine;
static dnnl_stream_t stream;
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
  return 1;
}

static Entry *build(int op, const int32_t *d) {
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
  CHECK(dnnl_primitive_desc_create(&fwd_pd, &fwd_d, NULL, engine, NULL));
  if (op == OP_FORWARD) {
    pd = fwd_pd;
  } else {
    dnnl_convolution_desc_t bd;
    if (op == OP_BACKWARD_DATA)
      CHECK(dnnl_dilated_convolution_backward_data_desc_init(&bd, dnnl_convolution_direct, &src_md, &w_any, &dst_md, strides, dil, pl, pr));
    else
      CHECK(dnnl_dilated_convolution_backward_weights_desc_init(&bd, dnnl_convolution_direct, &src_md, &w_any, NULL, &dst_md, strides, dil,
                                                                pl, pr));
    CHECK(dnnl_primitive_desc_create(&pd, &bd, NULL, engine, fwd_pd));
    dnnl_primitive_desc_destroy(fwd_pd);
  }

  Entry *e = calloc(1, sizeof *e);
  if (!e) return NULL;
  e->op = op;
  memcpy(e->dims, d, sizeof e->dims);
  CHECK(dnnl_primitive_create(&e->prim, pd));
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

static Entry *lookup(int op, const int32_t *d) {
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
static int execute(Entry *e, uint8_t *heap, int64_t a, int64_t b, int64_t out) {
  dnnl_memory_t w = e->blocked_w ? e->blocked_w : e->user_w;
  if (e->op == OP_BACKWARD_FILTER) {
    RUN(dnnl_memory_set_data_handle(e->act_in, heap + a));
    RUN(dnnl_memory_set_data_handle(e->act_out, heap + b));
    RUN(dnnl_memory_set_data_handle(e->user_w, heap + out));
    dnnl_exec_arg_t args[3] = {{DNNL_ARG_SRC, e->act_in}, {DNNL_ARG_DIFF_DST, e->act_out}, {DNNL_ARG_DIFF_WEIGHTS, w}};
    RUN(dnnl_primitive_execute(e->prim, stream, 3, args));
    if (e->reorder && !reorder(e->reorder, e->blocked_w, e->user_w)) return 0;
  } else {
    RUN(dnnl_memory_set_data_handle(e->act_in, heap + a));
    RUN(dnnl_memory_set_data_handle(e->user_w, heap + b));
    RUN(dnnl_memory_set_data_handle(e->act_out, heap + out));
    if (e->reorder && !reorder(e->reorder, e->user_w, e->blocked_w)) return 0;
    dnnl_exec_arg_t fwd[3] = {{DNNL_ARG_SRC, e->act_in}, {DNNL_ARG_WEIGHTS, w}, {DNNL_ARG_DST, e->act_out}};
    dnnl_exec_arg_t bwd[3] = {{DNNL_ARG_DIFF_DST, e->act_in}, {DNNL_ARG_WEIGHTS, w}, {DNNL_ARG_DIFF_SRC, e->act_out}};
    RUN(dnnl_primitive_execute(e->prim, stream, 3, e->op == OP_FORWARD ? fwd : bwd));
  }
  RUN(dnnl_stream_wait(stream));
  return 1;
}

static napi_value throw_error(napi_env env, const char *msg) {
  napi_throw_error(env, "SLFER_NATIVE_KERNEL", msg);
  return NULL;
}

// conv(op, heap: ArrayBuffer, a, b, out: byte offsets, dims: Int32Array(17))
static napi_value Conv(napi_env env, napi_callback_info info) {
  size_t argc = 6;
  napi_value argv[6];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc != 6) return throw_error(env, "conv: expected 6 arguments");
  int32_t op;
  int64_t a, b, out;
  void *heap;
  size_t heap_len;
  napi_typedarray_type type;
  size_t len;
  void *dims_data;
  if (napi_get_value_int32(env, argv[0], &op) != napi_ok || op < 0 || op > 2) return throw_error(env, "conv: bad op");
  if (napi_get_arraybuffer_info(env, argv[1], &heap, &heap_len) != napi_ok) return throw_error(env, "conv: heap must be an ArrayBuffer");
  if (napi_get_value_int64(env, argv[2], &a) != napi_ok || napi_get_value_int64(env, argv[3], &b) != napi_ok ||
      napi_get_value_int64(env, argv[4], &out) != napi_ok)
    return throw_error(env, "conv: offsets must be numbers");
  if (napi_get_typedarray_info(env, argv[5], &type, &len, &dims_data, NULL, NULL) != napi_ok || type != napi_int32_array || len != NDIMS)
    return throw_error(env, "conv: dims must be an Int32Array of 17");
  const int32_t *d = dims_data;
  // Every byte oneDNN touches must lie inside the heap.
  const int64_t x_bytes = 4LL * d[0] * d[1] * d[2] * d[3], y_bytes = 4LL * d[0] * d[7] * d[8] * d[6], w_bytes = 4LL * d[4] * d[5] * d[3] * d[6];
  const int64_t sizes[3][3] = {{x_bytes, w_bytes, y_bytes}, {y_bytes, w_bytes, x_bytes}, {x_bytes, y_bytes, w_bytes}};
  const int64_t offs[3] = {a, b, out};
  for (int i = 0; i < 3; i++)
    if (offs[i] < 0 || offs[i] + sizes[op][i] > (int64_t)heap_len) return throw_error(env, "conv: tensor outside the heap");
  if (!init_engine()) return throw_error(env, "oneDNN: cannot create a CPU engine");
  Entry *e = lookup(op, d);
  if (!e || !execute(e, heap, a, b, out)) return throw_error(env, last_error);
  return NULL;
}

// Gradient of exact x2 bilinear upsampling with half-pixel centers (ST's decoder): along each axis,
// input pixel i received 0.75 of outputs 2i and 2i+1 and 0.25 of 2i-1 and 2i+2, edges replicated.
// dy [B, 2h, 2w, C] at byte offset dy_off -> dx [B, h, w, C] at dx_off; rows of the batch in parallel.
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

// upsample2xGrad(heap: ArrayBuffer, dyOffset, dxOffset, B, h, w, C)
static napi_value Upsample2xGrad(napi_env env, napi_callback_info info) {
  size_t argc = 7;
  napi_value argv[7];
  void *heap;
  size_t heap_len;
  int64_t v[6];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc != 7) return throw_error(env, "upsample2xGrad: expected 7 arguments");
  if (napi_get_arraybuffer_info(env, argv[0], &heap, &heap_len) != napi_ok) return throw_error(env, "upsample2xGrad: heap must be an ArrayBuffer");
  for (int i = 0; i < 6; i++)
    if (napi_get_value_int64(env, argv[i + 1], &v[i]) != napi_ok || v[i] < 0) return throw_error(env, "upsample2xGrad: offsets and sizes must be non-negative numbers");
  const int64_t B = v[2], h = v[3], w = v[4], C = v[5];
  if (v[0] + 16 * B * h * w * C > (int64_t)heap_len || v[1] + 4 * B * h * w * C > (int64_t)heap_len) return throw_error(env, "upsample2xGrad: tensor outside the heap");
  upsample2x_grad((const float *)((uint8_t *)heap + v[0]), (float *)((uint8_t *)heap + v[1]), B, h, w, C);
  return NULL;
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

// Reads n non-negative integers from argv[first..] into v.
static int int_args(napi_env env, napi_value *argv, int first, int n, int64_t *v) {
  for (int i = 0; i < n; i++)
    if (napi_get_value_int64(env, argv[first + i], &v[i]) != napi_ok || v[i] < 0) return 0;
  return 1;
}

// batchNormForward(heap, x, gamma, beta, y, mean, var, rstd: byte offsets, rows, C, epsilon)
static napi_value BatchNormForward(napi_env env, napi_callback_info info) {
  size_t argc = 11;
  napi_value argv[11];
  void *heap;
  size_t len;
  int64_t v[9];
  double eps;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc != 11) return throw_error(env, "batchNormForward: expected 11 arguments");
  if (napi_get_arraybuffer_info(env, argv[0], &heap, &len) != napi_ok) return throw_error(env, "batchNormForward: heap must be an ArrayBuffer");
  if (!int_args(env, argv, 1, 9, v) || napi_get_value_double(env, argv[10], &eps) != napi_ok) return throw_error(env, "batchNormForward: bad offsets or sizes");
  const int64_t rows = v[7], C = v[8], big = 4 * rows * C, small = 4 * C;
  const int64_t sizes[7] = {big, small, small, big, small, small, small};
  for (int i = 0; i < 7; i++)
    if (v[i] + sizes[i] > (int64_t)len) return throw_error(env, "batchNormForward: tensor outside the heap");
  uint8_t *h = heap;
  if (!bn_forward((float *)(h + v[0]), (float *)(h + v[1]), (float *)(h + v[2]), (float *)(h + v[3]), (float *)(h + v[4]), (float *)(h + v[5]),
                  (float *)(h + v[6]), rows, C, (float)eps))
    return throw_error(env, "batchNormForward: out of memory");
  return NULL;
}

// batchNormBackward(heap, dy, x, mean, rstd, gamma, dx, dgamma, dbeta: byte offsets, rows, C)
static napi_value BatchNormBackward(napi_env env, napi_callback_info info) {
  size_t argc = 11;
  napi_value argv[11];
  void *heap;
  size_t len;
  int64_t v[10];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc != 11) return throw_error(env, "batchNormBackward: expected 11 arguments");
  if (napi_get_arraybuffer_info(env, argv[0], &heap, &len) != napi_ok) return throw_error(env, "batchNormBackward: heap must be an ArrayBuffer");
  if (!int_args(env, argv, 1, 10, v)) return throw_error(env, "batchNormBackward: bad offsets or sizes");
  const int64_t rows = v[8], C = v[9], big = 4 * rows * C, small = 4 * C;
  const int64_t sizes[8] = {big, big, small, small, small, big, small, small};
  for (int i = 0; i < 8; i++)
    if (v[i] + sizes[i] > (int64_t)len) return throw_error(env, "batchNormBackward: tensor outside the heap");
  uint8_t *h = heap;
  if (!bn_backward((float *)(h + v[0]), (float *)(h + v[1]), (float *)(h + v[2]), (float *)(h + v[3]), (float *)(h + v[4]), (float *)(h + v[5]),
                   (float *)(h + v[6]), (float *)(h + v[7]), rows, C))
    return throw_error(env, "batchNormBackward: out of memory");
  return NULL;
}

// maxPoolGrad(heap, x, dy, dx: byte offsets, dims: Int32Array(12): N H W C OH OW strideH strideW kh kw padTop padLeft)
static napi_value MaxPoolGrad(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  void *heap, *dims_data;
  size_t len, n;
  int64_t v[3], d[12];
  napi_typedarray_type type;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc != 5) return throw_error(env, "maxPoolGrad: expected 5 arguments");
  if (napi_get_arraybuffer_info(env, argv[0], &heap, &len) != napi_ok) return throw_error(env, "maxPoolGrad: heap must be an ArrayBuffer");
  if (!int_args(env, argv, 1, 3, v)) return throw_error(env, "maxPoolGrad: bad offsets");
  if (napi_get_typedarray_info(env, argv[4], &type, &n, &dims_data, NULL, NULL) != napi_ok || type != napi_int32_array || n != 12)
    return throw_error(env, "maxPoolGrad: dims must be an Int32Array of 12");
  for (int i = 0; i < 12; i++) d[i] = ((const int32_t *)dims_data)[i];
  const int64_t in_bytes = 4 * d[0] * d[1] * d[2] * d[3], out_bytes = 4 * d[0] * d[4] * d[5] * d[3];
  if (v[0] + in_bytes > (int64_t)len || v[1] + out_bytes > (int64_t)len || v[2] + in_bytes > (int64_t)len) return throw_error(env, "maxPoolGrad: tensor outside the heap");
  uint8_t *h = heap;
  if (!max_pool_grad((const float *)(h + v[0]), (const float *)(h + v[1]), (float *)(h + v[2]), d)) return throw_error(env, "maxPoolGrad: out of memory");
  return NULL;
}

static napi_value SetThreads(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  int32_t n;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc != 1 || napi_get_value_int32(env, argv[0], &n) != napi_ok || n < 1)
    return throw_error(env, "setThreads: expected a positive integer");
  omp_set_num_threads(n);
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
