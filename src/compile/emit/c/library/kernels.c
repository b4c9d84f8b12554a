
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
/* sat((a * ma + b * mb + 2^(sh-1)) >> sh) in 32 bits: ma, mb <= 2^22 and sh <= 30 (formats/scb.md §8) keep
   every step within int32. */
static int8_t sc_add_q(int8_t a, int32_t ma, int8_t b, int32_t mb, int32_t sh, int relu)
{
    int32_t v = (int32_t)a * ma + (int32_t)b * mb;
    const int32_t lo = relu ? 0 : -128;
    if (sh > 0) {
        v += (int32_t)1 << (sh - 1);
        v = v >= 0 ? v >> sh : ~((~v) >> sh);
    }
    return (int8_t)(v < lo ? lo : (v > 127 ? 127 : v));
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

/*@sc_taps*/
/* The taps of an int8 convolution in pairs, output channel by output channel: row r owns the triples
   start[r] .. start[r+1]-1 of tap, each (wa & 0xFFFF) | (wb << 16), oa, ob: two weights as 16-bit lanes and
   their offsets ci * PH * PW + ky * PW + kx into the zero-padded input (PH = h + 2p, PW = w + 2p). A row
   with an odd number of weights ends in a pair whose second weight is 0. */
typedef struct {
    const uint32_t *tap;
    const uint32_t *start;
    int32_t rows;
} sc_taps;

#ifndef SCULPT_ARM_DSP
#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP
#define SCULPT_ARM_DSP 1
#else
#define SCULPT_ARM_DSP 0
#endif
#endif
#if SCULPT_ARM_DSP
#include <arm_acle.h>
#endif

/*@sc_requant_row*/
/* sc_requantize for sh >= 32 with its per-row constants: q = floor((hi(acc * m + r64) + r32) / 2^n), hi(v) =
   floor(v / 2^32), which equals floor((acc * m + 2^(sh-1)) / 2^sh) (see sc_requantize), saturated to
   [lo, 127]. */
typedef struct {
    int32_t m, sh, n, r32;
    int64_t r64;
} sc_rq;

static void sc_rq_init(sc_rq *q, int32_t m, int32_t sh)
{
    q->m = m;
    q->sh = sh;
    q->n = sh - 32;
    q->r64 = sh == 32 ? ((int64_t)1 << 31) : 0;
    q->r32 = sh > 32 ? ((int32_t)1 << (sh - 33)) : 0;
}

/* sc_rq_apply for sh = 32 + n > 32 (where r64 = 0), from the row's m, r32 and n. */
static int32_t sc_rq_hi(int32_t acc, int32_t m, int32_t r32, int32_t n, int32_t lo)
{
    int64_t v = (int64_t)acc * (int64_t)m;
    int32_t h = (int32_t)(v >= 0 ? v >> 32 : ~((~v) >> 32)) + r32;
    int32_t u = h >= 0 ? h >> n : ~((~h) >> n);
    return u < lo ? lo : (u > 127 ? 127 : u);
}

static int8_t sc_rq_apply(const sc_rq *q, int32_t acc, int32_t lo)
{
    int64_t v;
    int32_t h, t;
    if (q->sh < 32) {
        t = sc_requantize(acc, q->m, q->sh, 0);
        return (int8_t)(t < lo ? lo : t);
    }
    if (q->sh > 32) {
        return (int8_t)sc_rq_hi(acc, q->m, q->r32, q->n, lo);
    }
    v = (int64_t)acc * (int64_t)q->m + q->r64;
    h = (int32_t)(v >= 0 ? v >> 32 : ~((~v) >> 32));
    return (int8_t)(h < lo ? lo : (h > 127 ? 127 : h));
}

/* sc_add_q with its rounding term rnd (2^(sh-1), or 0 when sh = 0) and lower bound lo precomputed. */
static int8_t sc_add_r(int32_t a, int32_t ma, int8_t b, int32_t mb, int32_t rnd, int32_t sh, int32_t lo)
{
    int32_t v = a * ma + (int32_t)b * mb + rnd;
    v = v >= 0 ? v >> sh : ~((~v) >> sh);
    return (int8_t)(v < lo ? lo : (v > 127 ? 127 : v));
}

/*@sc_conv_i8*/
#if SCULPT_ARM_DSP
/* PKHBT: the low half of a under the low half of b; PKHTB: the high half of b over the high half of a;
   SXTB16 of v rotated by 8: bytes 1 and 3 sign-extended into the two halves. */
#if defined(__GNUC__)
static int8x4_t sc_sxtb16_ror8(uint32_t v)
{
    int8x4_t r;
    __asm__("sxtb16 %0, %1, ror #8" : "=r"(r) : "r"(v));
    return r;
}
static uint32_t sc_pkhbt(uint32_t a, uint32_t b)
{
    uint32_t r;
    __asm__("pkhbt %0, %1, %2, lsl #16" : "=r"(r) : "r"(a), "r"(b));
    return r;
}
static uint32_t sc_pkhtb(uint32_t b, uint32_t a)
{
    uint32_t r;
    __asm__("pkhtb %0, %1, %2, asr #16" : "=r"(r) : "r"(b), "r"(a));
    return r;
}
#else
static int8x4_t sc_sxtb16_ror8(uint32_t v)
{
    return __sxtb16(v >> 8);
}
static uint32_t sc_pkhbt(uint32_t a, uint32_t b)
{
    return (a & 0xFFFFu) | (b << 16);
}
static uint32_t sc_pkhtb(uint32_t b, uint32_t a)
{
    return (b & 0xFFFF0000u) | (a >> 16);
}
#endif
/* Bytes p[0..3] as one little-endian word. */
static uint32_t sc_load4(const int8_t *p)
{
    return (uint32_t)(uint8_t)p[0] | ((uint32_t)(uint8_t)p[1] << 8) | ((uint32_t)(uint8_t)p[2] << 16) |
           ((uint32_t)(uint8_t)p[3] << 24);
}
#endif

/* Four outputs xq[0], xq[s], xq[2s], xq[3s] (relative to each tap's offset) of one output row: acc[j] += the
   row's taps. With SCULPT_ARM_DSP (and s == 1) two taps take one SMLAD per output; the sums are the same
   integers. */
static void sc_taps4(const uint32_t *tp, const uint32_t *t1, const int8_t *xq, int32_t s, int32_t *acc)
{
    int32_t a0 = acc[0], a1 = acc[1], a2 = acc[2], a3 = acc[3];
#if SCULPT_ARM_DSP
    if (s == 1) {
        for (; tp < t1; tp += 3) {
            uint32_t ua = sc_load4(xq + tp[1]), ub = sc_load4(xq + tp[2]);
            uint32_t lo = sc_pkhbt(ua, ub), hi = sc_pkhtb(ub, ua);
            int16x2_t w = (int16x2_t)tp[0];
            a0 = __smlad(w, __sxtb16(lo), a0);
            a1 = __smlad(w, sc_sxtb16_ror8(lo), a1);
            a2 = __smlad(w, __sxtb16(hi), a2);
            a3 = __smlad(w, sc_sxtb16_ror8(hi), a3);
        }
    }
#endif
    for (; tp < t1; tp += 3) {
        const int8_t *xa = xq + tp[1], *xb = xq + tp[2];
        int32_t wa = (int16_t)(uint16_t)(tp[0] & 0xFFFFu), wb = (int16_t)(uint16_t)(tp[0] >> 16);
        a0 += wa * xa[0] + wb * xb[0];
        a1 += wa * xa[s] + wb * xb[s];
        a2 += wa * xa[2 * s] + wb * xb[2 * s];
        a3 += wa * xa[3 * s] + wb * xb[3 * s];
    }
    acc[0] = a0;
    acc[1] = a1;
    acc[2] = a2;
    acc[3] = a3;
}

/* Output-stationary over a zero-padded copy of x (in pad, when p > 0): each output sums its row's taps in
   registers, four outputs of an output row per pass (the last pass of a row overlaps the one before when ow is
   not a multiple of four), then requantises; params holds (m, sh) per row, then (ma, mb, sh) of the fused
   residual add when res is not null. Integer sums do not depend on their order, so the results are those of
   the runtime's kernels. */
static void sc_conv_i8(const int8_t *x, int8_t *y, int8_t *pad, const sc_geom *g, const sc_taps *t,
                       const int32_t *bias, const int32_t *params, const int8_t *res, int relu)
{
    const int32_t s = g->s, p = g->p, ow = g->ow, oh = g->oh, plane = g->oh * g->ow;
    const int32_t pw = g->w + 2 * g->p, ph = g->h + 2 * g->p;
    const int32_t lo = (relu && !res) ? 0 : -128;
    const int32_t am = res ? params[2 * t->rows] : 0, bm = res ? params[2 * t->rows + 1] : 0;
    const int32_t ash = res ? params[2 * t->rows + 2] : 0;
    const int32_t rnd = ash > 0 ? (int32_t)1 << (ash - 1) : 0, alo = relu ? 0 : -128;
    const int8_t *xp = x;
    int32_t r, oy, ox, i, j;
    if (p > 0) {
        int32_t ch, yy, xx;
        for (ch = 0; ch < g->c; ch++) {
            int8_t *plane_p = pad + ch * ph * pw;
            for (i = 0; i < p * pw; i++) {
                plane_p[i] = 0;
                plane_p[(ph - p) * pw + i] = 0;
            }
            for (yy = 0; yy < g->h; yy++) {
                const int8_t *src = x + (ch * g->h + yy) * g->w;
                int8_t *dst = plane_p + (yy + p) * pw;
                for (xx = 0; xx < p; xx++) {
                    dst[xx] = 0;
                    dst[pw - 1 - xx] = 0;
                }
                memcpy(dst + p, src, (size_t)g->w);
            }
        }
        xp = pad;
    }
    for (r = 0; r < t->rows; r++) {
        const uint32_t *t0 = t->tap + 3 * t->start[r], *t1 = t->tap + 3 * t->start[r + 1];
        const int32_t b = bias ? bias[r] : 0;
        int8_t *yr = y + r * plane;
        sc_rq q;
        int fast;
        sc_rq_init(&q, params[2 * r], params[2 * r + 1]);
        fast = q.sh > 32;
        for (oy = 0; oy < oh; oy++) {
            const int8_t *xrow = xp + oy * s * pw;
            int8_t *yo = yr + oy * ow;
            for (ox = 0; ox < ow;) {
                int32_t a[4];
                int32_t n = 4;
                a[0] = a[1] = a[2] = a[3] = b;
                if (ow < 4) {
                    const uint32_t *tp;
                    const int8_t *xq = xrow + ox * s;
                    for (tp = t0; tp < t1; tp += 3) {
                        a[0] += (int16_t)(uint16_t)(tp[0] & 0xFFFFu) * xq[tp[1]] +
                                (int16_t)(uint16_t)(tp[0] >> 16) * xq[tp[2]];
                    }
                    n = 1;
                } else {
                    if (ox + 4 > ow) {
                        ox = ow - 4;
                    }
                    sc_taps4(t0, t1, xrow + ox * s, s, a);
                }
                if (fast) {
                    int8_t *yj = yo + ox;
                    const int8_t *rj = res ? res + r * plane + oy * ow + ox : 0;
                    if (rj && n == 4) {
                        yj[0] = sc_add_r(sc_rq_hi(a[0], q.m, q.r32, q.n, lo), am, rj[0], bm, rnd, ash, alo);
                        yj[1] = sc_add_r(sc_rq_hi(a[1], q.m, q.r32, q.n, lo), am, rj[1], bm, rnd, ash, alo);
                        yj[2] = sc_add_r(sc_rq_hi(a[2], q.m, q.r32, q.n, lo), am, rj[2], bm, rnd, ash, alo);
                        yj[3] = sc_add_r(sc_rq_hi(a[3], q.m, q.r32, q.n, lo), am, rj[3], bm, rnd, ash, alo);
                    } else if (rj) {
                        yj[0] = sc_add_r(sc_rq_hi(a[0], q.m, q.r32, q.n, lo), am, rj[0], bm, rnd, ash, alo);
                    } else if (n == 4) {
                        yj[0] = (int8_t)sc_rq_hi(a[0], q.m, q.r32, q.n, lo);
                        yj[1] = (int8_t)sc_rq_hi(a[1], q.m, q.r32, q.n, lo);
                        yj[2] = (int8_t)sc_rq_hi(a[2], q.m, q.r32, q.n, lo);
                        yj[3] = (int8_t)sc_rq_hi(a[3], q.m, q.r32, q.n, lo);
                    } else {
                        yj[0] = (int8_t)sc_rq_hi(a[0], q.m, q.r32, q.n, lo);
                    }
                } else {
                    for (j = 0; j < n; j++) {
                        int8_t v = sc_rq_apply(&q, a[j], lo);
                        if (res) {
                            const int32_t *m = params + 2 * t->rows;
                            int32_t at = r * plane + oy * ow + ox + j;
                            v = sc_add_q(v, m[0], res[at], m[1], m[2], relu);
                        }
                        yo[ox + j] = v;
                    }
                }
                ox += n;
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
    if (wt->vtype != 3 && enc == 1) {
        const int8_t *v = (const int8_t *)wt->values;
        const uint8_t *gap = (const uint8_t *)wt->index;
        for (row = 0; row < rows; row++) {
            int32_t acc = bias ? bias[row] : 0;
            const int8_t *xc = x - 1;
            for (k = (int32_t)wt->indptr[row]; k < (int32_t)wt->indptr[row + 1]; k++) {
                xc += 1 + gap[k];
                acc += (int32_t)v[k] * (int32_t)*xc;
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
