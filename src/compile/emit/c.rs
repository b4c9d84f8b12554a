//! The C emitter: C99 `model.h` / `model.c` from a lowered [`ScbModel`] (the same model the `.scb` writer
//! lays out), with `static const` weights in the model's own encodings, one static arena whose size is a
//! compile-time constant, no malloc, no libm and no stdio. Documented in `formats/c-api.md`. The kernels
//! reproduce the runtime's summation order and int8 arithmetic, so int8 outputs match bit for bit and float
//! outputs to rounding.

use std::fmt::Write as _;

use sculpt_runtime::format::{align_up, IndexEncoding, Opcode, ValueType, NONE};

use super::binary::{plan_arena, CsrBytes, Encoded, ScbModel, TensorSpec};
use super::rice;
use crate::error::{Error, Result};

/// The two generated files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CSource {
    pub header: String,
    pub source: String,
}

const KERNELS: &str = r#"
/*@sc_types*/
typedef struct {
    int enc;
    int param;
    int vtype;
    int32_t rows;
    int32_t cols;
    int32_t nnz;
    int32_t index_len;
    const void *values;
    const void *index;
    const uint32_t *indptr;
    const float *scales;
} sc_tensor;

typedef struct {
    const sc_tensor *t;
    int32_t row;
    int32_t next;
    int32_t k;
    int32_t code;
} sc_iter;

/*@sc_f16*/
static float sc_f16(uint16_t h)
{
    union { uint32_t u; float f; } v;
    uint32_t sign = ((uint32_t)h & 0x8000u) << 16;
    uint32_t e = ((uint32_t)h >> 10) & 0x1Fu;
    uint32_t m = (uint32_t)h & 0x03FFu;
    if (e == 0u && m == 0u) {
        v.u = sign;
    } else if (e == 0u) {
        uint32_t ex = 127u - 15u + 1u;
        while ((m & 0x0400u) == 0u) {
            m <<= 1;
            ex -= 1u;
        }
        v.u = sign | (ex << 23) | ((m & 0x03FFu) << 13);
    } else if (e == 0x1Fu) {
        v.u = sign | 0x7F800000u | (m << 13);
    } else {
        v.u = sign | ((e + 127u - 15u) << 23) | (m << 13);
    }
    return v.f;
}

/*@sc_value_f32*/
static float sc_value_f32(const sc_tensor *t, int32_t k)
{
    if (t->vtype == 1) {
        return sc_f16(((const uint16_t *)t->values)[k]);
    }
    return ((const float *)t->values)[k];
}

/*@sc_value_i32*/
static int32_t sc_value_i32(const sc_tensor *t, int32_t k)
{
    if (t->vtype == 3) {
        return ((const int32_t *)t->values)[k];
    }
    return (int32_t)((const int8_t *)t->values)[k];
}

/* Next stored entry in row-major order; returns 0 at the end. */
/*@sc_next*/
static int sc_next(sc_iter *it, int32_t *row, int32_t *col, int32_t *k)
{
    const sc_tensor *t = it->t;
    if (it->k >= t->nnz) {
        return 0;
    }
    *k = it->k;
    if (t->enc == 0) {
        if (it->next == t->cols) {
            it->next = 0;
            it->row += 1;
        }
        *row = it->row;
        *col = it->next;
        it->next += 1;
    } else if (t->enc == 4) {
        const uint8_t *bits = (const uint8_t *)t->index;
        int32_t q = 0;
        int32_t low = 0;
        int32_t j;
        for (;;) {
            int bit;
            if (it->code >= t->index_len) {
                return 0;
            }
            bit = (bits[it->code / 8] >> (it->code % 8)) & 1;
            it->code += 1;
            if (bit) {
                break;
            }
            q += 1;
        }
        if (t->index_len - it->code < t->param) {
            return 0;
        }
        for (j = 0; j < t->param; ++j) {
            low |= (int32_t)((bits[(it->code + j) / 8] >> ((it->code + j) % 8)) & 1) << j;
        }
        it->code += t->param;
        it->next += (q << t->param) | low;
        while (it->next >= t->cols) {
            it->next -= t->cols;
            it->row += 1;
        }
        *row = it->row;
        *col = it->next;
        it->next += 1;
    } else {
        int32_t c;
        while (it->row < t->rows && (int32_t)t->indptr[it->row + 1] <= it->k) {
            it->row += 1;
            it->next = 0;
        }
        if (it->row >= t->rows) {
            return 0;
        }
        if (t->enc == 1) {
            c = it->next + (int32_t)((const uint8_t *)t->index)[it->k];
        } else if (t->enc == 2) {
            c = (int32_t)((const uint16_t *)t->index)[it->k];
        } else {
            c = (int32_t)((const uint32_t *)t->index)[it->k];
        }
        it->next = c + 1;
        *row = it->row;
        *col = c;
    }
    it->k += 1;
    return 1;
}

/*@sc_iter_init*/
static void sc_iter_init(sc_iter *it, const sc_tensor *t)
{
    it->t = t;
    it->row = 0;
    it->next = 0;
    it->k = 0;
    it->code = 0;
}

/*@sc_geom*/
typedef struct {
    int32_t c, h, w, oh, ow, k, s, p;
} sc_geom;

/*@sc_span*/
static void sc_span(const sc_geom *g, int32_t d, int32_t n, int32_t on, int32_t *lo, int32_t *hi)
{
    int32_t l = 0;
    int32_t h = 0;
    if (g->p > d) {
        l = (g->p - d + g->s - 1) / g->s;
    }
    if (n + g->p > d) {
        h = (n - 1 + g->p - d) / g->s + 1;
        if (h > on) {
            h = on;
        }
    }
    if (h < l) {
        h = l;
    }
    *lo = l;
    *hi = h;
}

/*@sc_shift_round*/
/* (v + 2^(sh-1)) >> sh with an arithmetic shift (floor division by 2^sh, rounding halves up), portable C. */
static int64_t sc_shift_round(int64_t v, int32_t sh)
{
    if (sh == 0) {
        return v;
    }
    v += (int64_t)1 << (sh - 1);
    return v >= 0 ? v >> sh : ~((~v) >> sh);
}

/*@sc_saturate*/
static int8_t sc_saturate(int64_t v, int relu)
{
    int64_t lo = relu ? 0 : -128;
    if (v < lo) {
        return (int8_t)lo;
    }
    return (int8_t)(v > 127 ? 127 : v);
}

/*@sc_quantize*/
/* Input quantisation: v = x / s in float, rounded half away from zero, saturated; NaN gives 0. */
static int8_t sc_quantize(float x, float s)
{
    float v = x / s;
    int32_t t;
    float frac;
    if (v != v) {
        return 0;
    }
    if (v < -129.0f) {
        v = -129.0f;
    } else if (v > 128.0f) {
        v = 128.0f;
    }
    t = (int32_t)v;
    frac = v - (float)t;
    if (frac >= 0.5f) {
        t += 1;
    } else if (frac <= -0.5f) {
        t -= 1;
    }
    return sc_saturate(t, 0);
}

/*@sc_requantize*/
/* sat(rshr(acc * m, sh)). For sh >= 32 (the usual case) the rounding shift works on the high word of the
   64-bit product: floor(floor(v / 2^32) / 2^(sh - 32)) = floor(v / 2^sh), so 32-bit cores need no 64-bit
   shift or compare; |acc * m| < 2^62 keeps every step in range. */
static int8_t sc_requantize(int32_t acc, int32_t m, int32_t sh, int relu)
{
    int64_t v = (int64_t)acc * (int64_t)m;
    int32_t lo = relu ? 0 : -128;
    int32_t h;
    int32_t q;
    if (sh < 32) {
        return sc_saturate(sc_shift_round(v, sh), relu);
    }
    v += sh == 32 ? ((int64_t)1 << 31) : ((int64_t)((int32_t)1 << (sh - 33)) << 32);
    h = (int32_t)(v >= 0 ? v >> 32 : ~((~v) >> 32));
    q = h >= 0 ? h >> (sh - 32) : ~((~h) >> (sh - 32));
    return (int8_t)(q < lo ? lo : (q > 127 ? 127 : q));
}

/*@sc_add_q*/
static int8_t sc_add_q(int8_t a, int32_t ma, int8_t b, int32_t mb, int32_t sh, int relu)
{
    return sc_saturate(sc_shift_round((int64_t)((int32_t)a * ma + (int32_t)b * mb), sh), relu);
}

/*@sc_conv_f32*/
static void sc_conv_f32(const float *x, float *y, const sc_geom *g, const sc_tensor *wt, const float *bias,
                        const float *res, int relu)
{
    const int32_t s = g->s, p = g->p, iw = g->w, ow = g->ow, kw = g->k;
    int32_t plane = g->oh * g->ow;
    int32_t kk = g->k * g->k;
    int32_t r, c, k, i;
    sc_iter it;
    for (r = 0; r < wt->rows; r++) {
        float b = bias ? bias[r] : 0.0f;
        for (i = 0; i < plane; i++) {
            y[r * plane + i] = b;
        }
    }
    sc_iter_init(&it, wt);
    while (sc_next(&it, &r, &c, &k)) {
        int32_t ci = c / kk, rem = c % kk, ky = rem / kw, kx = rem % kw;
        int32_t oy0, oy1, ox0, ox1, oy;
        float w = sc_value_f32(wt, k);
        const float *xp = x + ci * g->h * iw;
        float *yp = y + r * plane;
        sc_span(g, ky, g->h, g->oh, &oy0, &oy1);
        sc_span(g, kx, g->w, g->ow, &ox0, &ox1);
        if (ox1 <= ox0) {
            continue;
        }
        for (oy = oy0; oy < oy1; oy++) {
            const float *xr = xp + (oy * s + ky - p) * iw + ox0 * s + kx - p;
            float *yr = yp + oy * ow + ox0;
            int32_t n = ox1 - ox0;
            if (s == 1) {
                for (; n > 0; n--) {
                    *yr++ += w * *xr++;
                }
            } else {
                for (; n > 0; n--) {
                    *yr++ += w * *xr;
                    xr += s;
                }
            }
        }
    }
    if (res) {
        for (i = 0; i < wt->rows * plane; i++) {
            y[i] += res[i];
        }
    }
    if (relu) {
        for (i = 0; i < wt->rows * plane; i++) {
            if (y[i] < 0.0f) {
                y[i] = 0.0f;
            }
        }
    }
}

/*@sc_conv_i8*/
/* Weights in channel-quad column order ((ci / 4) * K*K + ky * K + kx) * 4 + ci % 4; params holds (m, sh) per
   row, then (ma, mb, sh) of the fused residual add when res is not null. */
static void sc_conv_i8(const int8_t *x, int8_t *y, int32_t *acc, const sc_geom *g, const sc_tensor *wt,
                       const int32_t *bias, const int32_t *params, const int8_t *res, int relu)
{
    const int32_t s = g->s, p = g->p, iw = g->w, ow = g->ow, kw = g->k, ch = g->c, ihw = g->h * g->w;
    const int32_t rows = wt->rows;
    int32_t plane = g->oh * g->ow;
    int32_t kk = g->k * g->k;
    int32_t r, c, k, i, row;
    int have;
    sc_iter it;
    sc_iter_init(&it, wt);
    have = sc_next(&it, &r, &c, &k);
    for (row = 0; row < rows; row++) {
        int32_t m = params[2 * row], sh = params[2 * row + 1];
        int32_t b0 = bias ? bias[row] : 0;
        for (i = 0; i < plane; i++) {
            acc[i] = b0;
        }
        while (have && r == row) {
            int32_t q = c / 4, tap = q % kk, ci = 4 * (q / kk) + c % 4, ky = tap / kw, kx = tap % kw;
            int32_t oy0, oy1, ox0, ox1, oy;
            int32_t w = sc_value_i32(wt, k);
            sc_span(g, ky, g->h, g->oh, &oy0, &oy1);
            sc_span(g, kx, g->w, g->ow, &ox0, &ox1);
            if (ci < ch && ox1 > ox0) {
                const int8_t *xp = x + ci * ihw;
                for (oy = oy0; oy < oy1; oy++) {
                    const int8_t *xr = xp + (oy * s + ky - p) * iw + ox0 * s + kx - p;
                    int32_t *ar = acc + oy * ow + ox0;
                    int32_t n = ox1 - ox0;
                    if (s == 1) {
                        for (; n > 0; n--) {
                            *ar++ += w * (int32_t)*xr++;
                        }
                    } else {
                        for (; n > 0; n--) {
                            *ar++ += w * (int32_t)*xr;
                            xr += s;
                        }
                    }
                }
            }
            have = sc_next(&it, &r, &c, &k);
        }
        if (res) {
            const int32_t *a = params + 2 * rows;
            for (i = 0; i < plane; i++) {
                int8_t q = sc_requantize(acc[i], m, sh, 0);
                y[row * plane + i] = sc_add_q(q, a[0], res[row * plane + i], a[1], a[2], relu);
            }
        } else {
            for (i = 0; i < plane; i++) {
                y[row * plane + i] = sc_requantize(acc[i], m, sh, relu);
            }
        }
    }
}

/*@sc_gemm_f32*/
/* Row by row; each row's entries in stored order (the order of sc_next), without the iterator where the
   encoding gives a row's entries directly (dense, u8 gaps, u16 and u32 indices). */
static void sc_gemm_f32(const float *x, float *y, const sc_tensor *wt, const float *bias, int relu)
{
    const int32_t rows = wt->rows, cols = wt->cols, enc = wt->enc;
    int32_t r, c, k;
    sc_iter it;
    for (r = 0; r < rows; r++) {
        y[r] = bias ? bias[r] : 0.0f;
    }
    if (enc == 4) {
        sc_iter_init(&it, wt);
        while (sc_next(&it, &r, &c, &k)) {
            y[r] += sc_value_f32(wt, k) * x[c];
        }
    } else {
        for (r = 0; r < rows; r++) {
            float a = y[r];
            int32_t k0 = enc == 0 ? r * cols : (int32_t)wt->indptr[r];
            int32_t k1 = enc == 0 ? k0 + cols : (int32_t)wt->indptr[r + 1];
            if (enc == 0) {
                for (k = k0; k < k1; k++) {
                    a += sc_value_f32(wt, k) * x[k - k0];
                }
            } else if (enc == 1) {
                const uint8_t *gap = (const uint8_t *)wt->index;
                for (c = -1, k = k0; k < k1; k++) {
                    c += 1 + (int32_t)gap[k];
                    a += sc_value_f32(wt, k) * x[c];
                }
            } else if (enc == 2) {
                const uint16_t *col = (const uint16_t *)wt->index;
                for (k = k0; k < k1; k++) {
                    a += sc_value_f32(wt, k) * x[col[k]];
                }
            } else {
                const uint32_t *col = (const uint32_t *)wt->index;
                for (k = k0; k < k1; k++) {
                    a += sc_value_f32(wt, k) * x[col[k]];
                }
            }
            y[r] = a;
        }
    }
    if (relu) {
        for (r = 0; r < rows; r++) {
            if (y[r] < 0.0f) {
                y[r] = 0.0f;
            }
        }
    }
}

/*@sc_gemm_i8*/
static void sc_gemm_i8(const int8_t *x, int8_t *y, const sc_tensor *wt, const int32_t *bias,
                       const int32_t *params, int relu)
{
    const int32_t rows = wt->rows, cols = wt->cols, enc = wt->enc;
    int32_t r, c, k, row;
    int have;
    sc_iter it;
    if (enc == 4) {
        sc_iter_init(&it, wt);
        have = sc_next(&it, &r, &c, &k);
        for (row = 0; row < rows; row++) {
            int32_t acc = bias ? bias[row] : 0;
            while (have && r == row) {
                acc += sc_value_i32(wt, k) * (int32_t)x[c];
                have = sc_next(&it, &r, &c, &k);
            }
            y[row] = sc_requantize(acc, params[2 * row], params[2 * row + 1], relu);
        }
        return;
    }
    for (row = 0; row < rows; row++) {
        int32_t acc = bias ? bias[row] : 0;
        int32_t k0 = enc == 0 ? row * cols : (int32_t)wt->indptr[row];
        int32_t k1 = enc == 0 ? k0 + cols : (int32_t)wt->indptr[row + 1];
        if (enc == 0) {
            for (k = k0; k < k1; k++) {
                acc += sc_value_i32(wt, k) * (int32_t)x[k - k0];
            }
        } else if (enc == 1) {
            const uint8_t *gap = (const uint8_t *)wt->index;
            for (c = -1, k = k0; k < k1; k++) {
                c += 1 + (int32_t)gap[k];
                acc += sc_value_i32(wt, k) * (int32_t)x[c];
            }
        } else if (enc == 2) {
            const uint16_t *col = (const uint16_t *)wt->index;
            for (k = k0; k < k1; k++) {
                acc += sc_value_i32(wt, k) * (int32_t)x[col[k]];
            }
        } else {
            const uint32_t *col = (const uint32_t *)wt->index;
            for (k = k0; k < k1; k++) {
                acc += sc_value_i32(wt, k) * (int32_t)x[col[k]];
            }
        }
        y[row] = sc_requantize(acc, params[2 * row], params[2 * row + 1], relu);
    }
}
"#;

const POOLS_F32: &str = r#"
/*@sc_max_pool_f32*/
static void sc_max_pool_f32(const float *x, float *y, int32_t c, int32_t h, int32_t w, int32_t k, int32_t s)
{
    int32_t oh = (h - k) / s + 1, ow = (w - k) / s + 1, ch, oy, ox, dy, dx;
    for (ch = 0; ch < c; ch++) {
        const float *xp = x + ch * h * w;
        for (oy = 0; oy < oh; oy++) {
            for (ox = 0; ox < ow; ox++) {
                float m = xp[oy * s * w + ox * s];
                for (dy = 0; dy < k; dy++) {
                    for (dx = 0; dx < k; dx++) {
                        float v = xp[(oy * s + dy) * w + ox * s + dx];
                        if (v > m) {
                            m = v;
                        }
                    }
                }
                y[(ch * oh + oy) * ow + ox] = m;
            }
        }
    }
}

/*@sc_avg_pool_f32*/
static void sc_avg_pool_f32(const float *x, float *y, int32_t c, int32_t h, int32_t w, int32_t k, int32_t s)
{
    int32_t oh = (h - k) / s + 1, ow = (w - k) / s + 1, ch, oy, ox, dy, dx;
    for (ch = 0; ch < c; ch++) {
        const float *xp = x + ch * h * w;
        for (oy = 0; oy < oh; oy++) {
            for (ox = 0; ox < ow; ox++) {
                float acc = 0.0f;
                for (dy = 0; dy < k; dy++) {
                    for (dx = 0; dx < k; dx++) {
                        acc += xp[(oy * s + dy) * w + ox * s + dx];
                    }
                }
                y[(ch * oh + oy) * ow + ox] = acc / (float)(k * k);
            }
        }
    }
}

/*@sc_gap_f32*/
static void sc_gap_f32(const float *x, float *y, int32_t c, int32_t hw)
{
    int32_t ch, i;
    for (ch = 0; ch < c; ch++) {
        float acc = 0.0f;
        for (i = 0; i < hw; i++) {
            acc += x[ch * hw + i];
        }
        y[ch] = acc / (float)hw;
    }
}

/*@sc_add_f32*/
static void sc_add_f32(const float *a, const float *b, float *y, int32_t n, int relu)
{
    int32_t i;
    for (i = 0; i < n; i++) {
        y[i] = a[i] + b[i];
        if (relu && y[i] < 0.0f) {
            y[i] = 0.0f;
        }
    }
}

/*@sc_relu_f32*/
static void sc_relu_f32(const float *x, float *y, int32_t n)
{
    int32_t i;
    for (i = 0; i < n; i++) {
        y[i] = x[i] < 0.0f ? 0.0f : x[i];
    }
}

/*@sc_subsample_pad_f32*/
static void sc_subsample_pad_f32(const float *x, float *y, int32_t c, int32_t h, int32_t w, int32_t s,
                                 int32_t pad, int32_t oc)
{
    int32_t oh = (h + s - 1) / s, ow = (w + s - 1) / s, ch, oy, ox, i;
    for (i = 0; i < oc * oh * ow; i++) {
        y[i] = 0.0f;
    }
    for (ch = 0; ch < c; ch++) {
        for (oy = 0; oy < oh; oy++) {
            for (ox = 0; ox < ow; ox++) {
                y[((ch + pad) * oh + oy) * ow + ox] = x[(ch * h + oy * s) * w + ox * s];
            }
        }
    }
}
"#;

const POOLS_I8: &str = r#"
/*@sc_max_pool_i8*/
static void sc_max_pool_i8(const int8_t *x, int8_t *y, int32_t c, int32_t h, int32_t w, int32_t k, int32_t s)
{
    int32_t oh = (h - k) / s + 1, ow = (w - k) / s + 1, ch, oy, ox, dy, dx;
    for (ch = 0; ch < c; ch++) {
        const int8_t *xp = x + ch * h * w;
        for (oy = 0; oy < oh; oy++) {
            for (ox = 0; ox < ow; ox++) {
                int8_t m = xp[oy * s * w + ox * s];
                for (dy = 0; dy < k; dy++) {
                    for (dx = 0; dx < k; dx++) {
                        int8_t v = xp[(oy * s + dy) * w + ox * s + dx];
                        if (v > m) {
                            m = v;
                        }
                    }
                }
                y[(ch * oh + oy) * ow + ox] = m;
            }
        }
    }
}

/*@sc_avg_pool_i8*/
static void sc_avg_pool_i8(const int8_t *x, int8_t *y, int32_t c, int32_t h, int32_t w, int32_t k, int32_t s,
                           const int32_t *params)
{
    int32_t oh = (h - k) / s + 1, ow = (w - k) / s + 1, ch, oy, ox, dy, dx;
    for (ch = 0; ch < c; ch++) {
        const int8_t *xp = x + ch * h * w;
        for (oy = 0; oy < oh; oy++) {
            for (ox = 0; ox < ow; ox++) {
                int32_t acc = 0;
                for (dy = 0; dy < k; dy++) {
                    for (dx = 0; dx < k; dx++) {
                        acc += (int32_t)xp[(oy * s + dy) * w + ox * s + dx];
                    }
                }
                y[(ch * oh + oy) * ow + ox] = sc_requantize(acc, params[0], params[1], 0);
            }
        }
    }
}

/*@sc_gap_i8*/
static void sc_gap_i8(const int8_t *x, int8_t *y, int32_t c, int32_t hw, const int32_t *params)
{
    int32_t ch, i;
    for (ch = 0; ch < c; ch++) {
        int32_t acc = 0;
        for (i = 0; i < hw; i++) {
            acc += (int32_t)x[ch * hw + i];
        }
        y[ch] = sc_requantize(acc, params[0], params[1], 0);
    }
}

/*@sc_add_i8*/
static void sc_add_i8(const int8_t *a, const int8_t *b, int8_t *y, int32_t n, const int32_t *params, int relu)
{
    int32_t i;
    for (i = 0; i < n; i++) {
        y[i] = sc_add_q(a[i], params[0], b[i], params[1], params[2], relu);
    }
}

/*@sc_relu_i8*/
static void sc_relu_i8(const int8_t *x, int8_t *y, int32_t n)
{
    int32_t i;
    for (i = 0; i < n; i++) {
        y[i] = x[i] < 0 ? 0 : x[i];
    }
}

/*@sc_subsample_pad_i8*/
static void sc_subsample_pad_i8(const int8_t *x, int8_t *y, int32_t c, int32_t h, int32_t w, int32_t s,
                                int32_t pad, int32_t oc)
{
    int32_t oh = (h + s - 1) / s, ow = (w + s - 1) / s, ch, oy, ox, i;
    for (i = 0; i < oc * oh * ow; i++) {
        y[i] = 0;
    }
    for (ch = 0; ch < c; ch++) {
        for (oy = 0; oy < oh; oy++) {
            for (ox = 0; ox < ow; ox++) {
                y[((ch + pad) * oh + oy) * ow + ox] = x[(ch * h + oy * s) * w + ox * s];
            }
        }
    }
}
"#;

/// The library functions `model` calls, in dependency order.
fn c_library(model: &ScbModel) -> String {
    let has = |code: Opcode| model.ops.iter().any(|o| o.opcode == code);
    let sfx = if model.int8 { "i8" } else { "f32" };
    let mut want: Vec<String> = Vec::new();
    let weighted = has(Opcode::Conv) || has(Opcode::Gemm);
    if weighted {
        want.extend(["sc_types", "sc_next", "sc_iter_init"].map(String::from));
        if model.int8 {
            want.push("sc_value_i32".into());
        } else {
            want.extend(["sc_f16", "sc_value_f32"].map(String::from));
        }
    }
    if model.int8 {
        want.extend(
            [
                "sc_shift_round",
                "sc_saturate",
                "sc_quantize",
                "sc_requantize",
                "sc_add_q",
            ]
            .map(String::from),
        );
    }
    if has(Opcode::Conv) {
        want.extend(["sc_geom".into(), "sc_span".into(), format!("sc_conv_{sfx}")]);
    }
    for (code, name) in [
        (Opcode::Gemm, "sc_gemm"),
        (Opcode::MaxPool, "sc_max_pool"),
        (Opcode::AvgPool, "sc_avg_pool"),
        (Opcode::GlobalAvgPool, "sc_gap"),
        (Opcode::Add, "sc_add"),
        (Opcode::Relu, "sc_relu"),
        (Opcode::SubsamplePad, "sc_subsample_pad"),
    ] {
        if has(code) {
            want.push(format!("{name}_{sfx}"));
        }
    }
    let mut out = String::new();
    for part in [KERNELS, POOLS_F32, POOLS_I8] {
        for piece in part.split("/*@").skip(1) {
            let (name, body) = piece.split_once("*/").expect("marker");
            if want.iter().any(|w| w == name) {
                out.push_str(body.trim_end());
                out.push('\n');
            }
        }
    }
    out
}

fn c_float(v: f32) -> Result<String> {
    if !v.is_finite() {
        return Err(Error::Invalid(format!(
            "C emitter: non-finite constant {v}"
        )));
    }
    Ok(format!("{v:e}f"))
}

fn c_i32(v: i32) -> String {
    if v == i32::MIN {
        "(-2147483647 - 1)".into()
    } else {
        v.to_string()
    }
}

fn array(out: &mut String, ty: &str, name: &str, items: &[String]) {
    let _ = write!(out, "static const {ty} {name}[{}] = {{", items.len().max(1));
    if items.is_empty() {
        out.push('0');
    }
    for (i, it) in items.iter().enumerate() {
        if i % 12 == 0 {
            out.push_str("\n    ");
        } else {
            out.push(' ');
        }
        out.push_str(it);
        out.push(',');
    }
    out.push_str("\n};\n");
}

fn le_chunks<const N: usize>(b: &[u8]) -> impl Iterator<Item = [u8; N]> + '_ {
    b.chunks_exact(N).map(|c| {
        let mut a = [0u8; N];
        a.copy_from_slice(c);
        a
    })
}

fn values_array(
    out: &mut String,
    name: &str,
    vtype: ValueType,
    bytes: &[u8],
) -> Result<&'static str> {
    match vtype {
        ValueType::F32 => {
            let items = le_chunks::<4>(bytes)
                .map(|c| c_float(f32::from_le_bytes(c)))
                .collect::<Result<Vec<_>>>()?;
            array(out, "float", name, &items);
            Ok("float")
        }
        ValueType::F16 => {
            let items: Vec<String> = le_chunks::<2>(bytes)
                .map(|c| format!("0x{:04X}u", u16::from_le_bytes(c)))
                .collect();
            array(out, "uint16_t", name, &items);
            Ok("uint16_t")
        }
        ValueType::I8 => {
            let items: Vec<String> = bytes.iter().map(|&b| (b as i8).to_string()).collect();
            array(out, "int8_t", name, &items);
            Ok("int8_t")
        }
        ValueType::I32 => {
            let items: Vec<String> = le_chunks::<4>(bytes)
                .map(|c| c_i32(i32::from_le_bytes(c)))
                .collect();
            array(out, "int32_t", name, &items);
            Ok("int32_t")
        }
    }
}

/// The arrays the C stores for `t` (whose matrix has `cols` columns): a Rice-coded tensor is re-encoded as the
/// smaller of dense, u8 gaps and u16 indices, which the kernels read without bit decoding; the entries keep
/// their row-major order, so every sum runs in the same order as the runtime's. Other encodings are kept.
fn c_layout(t: &TensorSpec, cols: usize) -> Result<Encoded> {
    if t.data.encoding != IndexEncoding::Rice {
        return Ok(t.data.clone());
    }
    let rows = t.dims[0];
    let bad = || Error::Invalid("C emitter: Rice stream does not match its tensor".into());
    let positions =
        rice::decode(&t.data.index, t.data.index_len, t.data.param, t.data.nnz).ok_or_else(bad)?;
    let elem = t.dtype.size();
    if t.data.values.len() != positions.len() * elem {
        return Err(bad());
    }
    let mut csr = CsrBytes {
        rows,
        cols,
        indptr: vec![0],
        indices: Vec::with_capacity(positions.len()),
        values: t.data.values.clone(),
        elem,
    };
    for &p in &positions {
        if p >= rows * cols {
            return Err(bad());
        }
        while csr.indptr.len() <= p / cols {
            csr.indptr.push(csr.indices.len());
        }
        csr.indices.push(p % cols);
    }
    while csr.indptr.len() <= rows {
        csr.indptr.push(csr.indices.len());
    }
    Ok(csr.smallest(&[IndexEncoding::CsrGap8, IndexEncoding::CsrIdx16]))
}

/// Generates `model.h` and `model.c` for `model` (whose tensors and ops are already lowered and encoded).
/// The model hash appears as the string `sculpt_model_id`.
pub fn emit_c(model: &ScbModel) -> Result<CSource> {
    let elem = if model.int8 { 1 } else { 4 };
    let mut sizes: Vec<usize> = model
        .buffers
        .iter()
        .map(|b| b.dims.iter().product::<usize>() * elem)
        .collect();
    for op in &model.ops {
        if model.int8 && op.opcode == Opcode::Conv {
            let d = &model.buffers[op.out as usize].dims;
            sizes[op.out as usize] = align_up(sizes[op.out as usize]) + 4 * d[1] * d[2];
        }
    }
    let (offsets, arena) = plan_arena(&sizes, &model.ops, model.input, model.output);
    let numel = |b: u32| model.buffers[b as usize].dims.iter().product::<usize>();
    let id: String = model
        .model_hash
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let (in_len, out_len) = (numel(model.input), numel(model.output));
    let in_dims = &model.buffers[model.input as usize].dims;

    let mut h = String::new();
    let _ = write!(
        h,
        "/* Generated by sculpt: C99 inference for one model. See formats/c-api.md. */\n\
         #ifndef SCULPT_MODEL_H\n#define SCULPT_MODEL_H\n\n#include <stdint.h>\n\n\
         #define SCULPT_MODEL_ARENA_SIZE {arena}\n\
         #define SCULPT_MODEL_INPUT_LEN {in_len}\n\
         #define SCULPT_MODEL_OUTPUT_LEN {out_len}\n\
         #define SCULPT_MODEL_INT8 {}\n\n\
         /* sha256 of the model's IR, identical in every export of this model (hex). */\n\
         extern const char sculpt_model_id[65];\n\n\
         /* Runs one sample: input holds SCULPT_MODEL_INPUT_LEN floats (C, H, W channel-major), output receives\n   \
         SCULPT_MODEL_OUTPUT_LEN floats. Returns 0. Not reentrant (one static arena). */\n\
         int sculpt_model_run(const float *input, float *output);\n\n\
         /* Input normalisation that sculpt_model_run applies when SCULPT_MODEL_NORMALIZED is 1:\n   \
         x[i] = (input[i] - sculpt_model_input_mean[c]) / sculpt_model_input_std[c], c = i / (H * W). */\n\
         #define SCULPT_MODEL_INPUT_CHANNELS {channels}\n\
         #define SCULPT_MODEL_NORMALIZED {normalized}\n",
        u8::from(model.int8),
        channels = in_dims[0],
        normalized = u8::from(model.normalization.is_some()),
    );
    if model.normalization.is_some() {
        h.push_str(
            "extern const float sculpt_model_input_mean[SCULPT_MODEL_INPUT_CHANNELS];\n\
             extern const float sculpt_model_input_std[SCULPT_MODEL_INPUT_CHANNELS];\n",
        );
    }
    if model.int8 {
        h.push_str(
            "\n/* Int8 entry: input as sculpt_model_prepare_input writes it; output holds the raw int8 logits\n   \
             (real = SCULPT_MODEL_OUTPUT_SCALE * q). Returns 0. */\n\
             int sculpt_model_run_int8(const int8_t *input, int8_t *output);\n\n\
             /* Turns SCULPT_MODEL_INPUT_LEN raw floats into the int8 input of sculpt_model_run_int8 exactly as\n   \
             sculpt_model_run does: normalises (when SCULPT_MODEL_NORMALIZED), divides by SCULPT_MODEL_INPUT_SCALE\n   \
             in float, rounds half away from zero and saturates to [-128, 127]; NaN gives 0. Returns 0. */\n\
             int sculpt_model_prepare_input(const float *input, int8_t *q);\n",
        );
        let _ = writeln!(
            h,
            "#define SCULPT_MODEL_INPUT_SCALE {}\n#define SCULPT_MODEL_OUTPUT_SCALE {}",
            c_float(model.buffers[model.input as usize].scale)?,
            c_float(model.buffers[model.output as usize].scale)?
        );
    }
    h.push_str("\n#endif\n");

    let mut c = String::new();
    c.push_str("/* Generated by sculpt. See formats/c-api.md. */\n#include \"model.h\"\n");
    let _ = writeln!(c, "\nconst char sculpt_model_id[65] = \"{id}\";");
    c.push_str(&c_library(model));
    c.push('\n');
    for (i, t) in model.tensors.iter().enumerate() {
        let rows = t.dims[0];
        let cols: usize = if t.dtype == ValueType::I8 && t.dims.len() == 4 {
            t.dims[1].div_ceil(4) * 4 * t.dims[2] * t.dims[3]
        } else {
            t.dims[1..].iter().product()
        };
        let data = c_layout(t, cols)?;
        let vname = format!("sc_t{i}_values");
        values_array(&mut c, &vname, t.dtype, &data.values)?;
        let index = match data.encoding {
            IndexEncoding::Dense => "0".to_string(),
            enc => {
                let name = format!("sc_t{i}_index");
                let items: Vec<String> = match enc {
                    IndexEncoding::CsrIdx16 => le_chunks::<2>(&data.index)
                        .map(|b| u16::from_le_bytes(b).to_string())
                        .collect(),
                    IndexEncoding::CsrIdx32 => le_chunks::<4>(&data.index)
                        .map(|b| format!("{}u", u32::from_le_bytes(b)))
                        .collect(),
                    _ => data.index.iter().map(|b| b.to_string()).collect(),
                };
                let ty = match enc {
                    IndexEncoding::CsrIdx16 => "uint16_t",
                    IndexEncoding::CsrIdx32 => "uint32_t",
                    _ => "uint8_t",
                };
                array(&mut c, ty, &name, &items);
                name
            }
        };
        let indptr = match &data.indptr {
            Some(p) => {
                let name = format!("sc_t{i}_indptr");
                array(
                    &mut c,
                    "uint32_t",
                    &name,
                    &p.iter().map(|v| format!("{v}u")).collect::<Vec<_>>(),
                );
                name
            }
            None => "0".into(),
        };
        let scales = match &t.scales {
            Some(s) => {
                let name = format!("sc_t{i}_scales");
                array(
                    &mut c,
                    "float",
                    &name,
                    &s.iter().map(|&v| c_float(v)).collect::<Result<Vec<_>>>()?,
                );
                name
            }
            None => "0".into(),
        };
        let _ = writeln!(
            c,
            "static const sc_tensor sc_t{i} = {{{}, {}, {}, {rows}, {cols}, {}, {}, {vname}, {index}, {indptr}, {scales}}};\n",
            data.encoding.code(), data.param, t.dtype.code(), data.nnz, data.index_len
        );
    }
    if let Some((mean, std)) = &model.normalization {
        for (name, v) in [
            ("sculpt_model_input_mean", mean),
            ("sculpt_model_input_std", std),
        ] {
            let items = v.iter().map(|&v| c_float(v)).collect::<Result<Vec<_>>>()?;
            let mut a = String::new();
            array(&mut a, "float", name, &items);
            c.push_str(a.strip_prefix("static ").expect("array() writes a static"));
        }
    }
    let arena_ty = if model.int8 { "int32_t" } else { "float" };
    let _ = writeln!(
        c,
        "static {arena_ty} sc_arena[SCULPT_MODEL_ARENA_SIZE / 4];\n"
    );
    let act = if model.int8 { "int8_t" } else { "float" };
    let buf = |b: u32| {
        format!(
            "(({act} *)((unsigned char *)sc_arena + {}))",
            offsets[b as usize]
        )
    };
    let scale = |b: u32| c_float(model.buffers[b as usize].scale);

    for (i, op) in model.ops.iter().enumerate() {
        if !op.params.is_empty() {
            let items: Vec<String> = op.params.iter().map(|&v| c_i32(v)).collect();
            array(&mut c, "int32_t", &format!("sc_p{i}"), &items);
        }
    }
    c.push('\n');
    c.push_str("static void sc_run_graph(void)\n{\n");
    for (i, op) in model.ops.iter().enumerate() {
        let x = buf(op.in0);
        let y = buf(op.out);
        let xd = &model.buffers[op.in0 as usize].dims;
        let yd = &model.buffers[op.out as usize].dims;
        let relu = u8::from(op.relu);
        let params = format!("sc_p{i}");
        let res = if op.residual {
            buf(op.in1)
        } else {
            "0".to_string()
        };
        let _ = writeln!(c, "    /* op {i} */");
        let bias = if op.bias == NONE {
            "0".to_string()
        } else {
            format!(
                "({})sc_t{}.values",
                if model.int8 {
                    "const int32_t *"
                } else {
                    "const float *"
                },
                op.bias
            )
        };
        match op.opcode {
            Opcode::Conv => {
                let _ = writeln!(
                    c,
                    "    {{\n        static const sc_geom g = {{{}, {}, {}, {}, {}, {}, {}, {}}};",
                    xd[0], xd[1], xd[2], yd[1], yd[2], op.kernel, op.stride, op.pad
                );
                if model.int8 {
                    let acc = format!(
                        "((int32_t *)((unsigned char *)sc_arena + {}))",
                        offsets[op.out as usize] + align_up(numel(op.out))
                    );
                    let _ = writeln!(
                        c,
                        "        sc_conv_i8({x}, {y}, {acc}, &g, &sc_t{}, {bias}, {params}, {res}, {relu});\n    }}",
                        op.weight
                    );
                } else {
                    let _ = writeln!(
                        c,
                        "        sc_conv_f32({x}, {y}, &g, &sc_t{}, {bias}, {res}, {relu});\n    }}",
                        op.weight
                    );
                }
            }
            Opcode::Gemm => {
                if model.int8 {
                    let _ = writeln!(
                        c,
                        "    sc_gemm_i8({x}, {y}, &sc_t{}, {bias}, {params}, {relu});",
                        op.weight
                    );
                } else {
                    let _ = writeln!(
                        c,
                        "    sc_gemm_f32({x}, {y}, &sc_t{}, {bias}, {relu});",
                        op.weight
                    );
                }
            }
            Opcode::MaxPool => {
                let sfx = if model.int8 { "i8" } else { "f32" };
                let _ = writeln!(
                    c,
                    "    sc_max_pool_{sfx}({x}, {y}, {}, {}, {}, {}, {});",
                    xd[0], xd[1], xd[2], op.kernel, op.stride
                );
            }
            Opcode::AvgPool => {
                if model.int8 {
                    let _ = writeln!(
                        c,
                        "    sc_avg_pool_i8({x}, {y}, {}, {}, {}, {}, {}, {params});",
                        xd[0], xd[1], xd[2], op.kernel, op.stride
                    );
                } else {
                    let _ = writeln!(
                        c,
                        "    sc_avg_pool_f32({x}, {y}, {}, {}, {}, {}, {});",
                        xd[0], xd[1], xd[2], op.kernel, op.stride
                    );
                }
            }
            Opcode::GlobalAvgPool => {
                if model.int8 {
                    let _ = writeln!(
                        c,
                        "    sc_gap_i8({x}, {y}, {}, {}, {params});",
                        xd[0],
                        xd[1] * xd[2]
                    );
                } else {
                    let _ = writeln!(c, "    sc_gap_f32({x}, {y}, {}, {});", xd[0], xd[1] * xd[2]);
                }
            }
            Opcode::Add => {
                let z = buf(op.in1);
                if model.int8 {
                    let _ = writeln!(
                        c,
                        "    sc_add_i8({x}, {z}, {y}, {}, {params}, {relu});",
                        numel(op.out)
                    );
                } else {
                    let _ = writeln!(
                        c,
                        "    sc_add_f32({x}, {z}, {y}, {}, {relu});",
                        numel(op.out)
                    );
                }
            }
            Opcode::SubsamplePad => {
                let sfx = if model.int8 { "i8" } else { "f32" };
                let _ = writeln!(
                    c,
                    "    sc_subsample_pad_{sfx}({x}, {y}, {}, {}, {}, {}, {}, {});",
                    xd[0], xd[1], xd[2], op.stride, op.pad, yd[0]
                );
            }
            Opcode::Relu => {
                let sfx = if model.int8 { "i8" } else { "f32" };
                let _ = writeln!(c, "    sc_relu_{sfx}({x}, {y}, {});", numel(op.out));
            }
        }
    }
    c.push_str("}\n\n");

    let norm = |idx: &str| -> String {
        match &model.normalization {
            None => format!("input[{idx}]"),
            Some(_) => {
                let d = &model.buffers[model.input as usize].dims;
                format!(
                    "(input[{idx}] - sculpt_model_input_mean[{idx} / {hw}]) / sculpt_model_input_std[{idx} / {hw}]",
                    hw = d[1] * d[2]
                )
            }
        }
    };
    let xin = buf(model.input);
    let yout = buf(model.output);
    c.push_str("int sculpt_model_run(const float *input, float *output)\n{\n    int32_t i;\n");
    if model.int8 {
        let si = scale(model.input)?;
        let so = scale(model.output)?;
        let _ = write!(
            c,
            "    const int8_t *y;\n    sculpt_model_prepare_input(input, {xin});\n    sc_run_graph();\n    y = {yout};\n    \
             for (i = 0; i < {out_len}; i++) {{\n        output[i] = (float)y[i] * {so};\n    }}\n    return 0;\n}}\n\n"
        );
        let _ = write!(
            c,
            "int sculpt_model_prepare_input(const float *input, int8_t *q)\n{{\n    int32_t i;\n    \
             for (i = 0; i < {in_len}; i++) {{\n        q[i] = sc_quantize({}, {si});\n    }}\n    return 0;\n}}\n\n",
            norm("i")
        );
        let _ = write!(
            c,
            "int sculpt_model_run_int8(const int8_t *input, int8_t *output)\n{{\n    int32_t i;\n    int8_t *x = {xin};\n    \
             const int8_t *y;\n    for (i = 0; i < {in_len}; i++) {{\n        x[i] = input[i];\n    }}\n    sc_run_graph();\n    \
             y = {yout};\n    for (i = 0; i < {out_len}; i++) {{\n        output[i] = y[i];\n    }}\n    return 0;\n}}\n"
        );
    } else {
        let _ = write!(
            c,
            "    float *x = {xin};\n    const float *y;\n    for (i = 0; i < {in_len}; i++) {{\n        x[i] = {};\n    }}\n    \
             sc_run_graph();\n    y = {yout};\n    for (i = 0; i < {out_len}; i++) {{\n        output[i] = y[i];\n    }}\n    return 0;\n}}\n",
            norm("i")
        );
    }
    Ok(CSource {
        header: h,
        source: c,
    })
}
