
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
