
/*@sc_max_pool_i8*/
static void sc_max_pool_i8(const int8_t *x, int8_t *y, int32_t c, int32_t h, int32_t w, int32_t k, int32_t s)
{
    int32_t oh = (h - k) / s + 1, ow = (w - k) / s + 1, ch, oy, ox, dy, dx;
    if (k == 2 && s == 2) {
        for (ch = 0; ch < c; ch++) {
            for (oy = 0; oy < oh; oy++) {
                const int8_t *r0 = x + (ch * h + 2 * oy) * w, *r1 = r0 + w;
                int8_t *yo = y + (ch * oh + oy) * ow;
                for (ox = 0; ox < ow; ox++) {
                    int32_t a = r0[2 * ox] > r0[2 * ox + 1] ? r0[2 * ox] : r0[2 * ox + 1];
                    int32_t b = r1[2 * ox] > r1[2 * ox + 1] ? r1[2 * ox] : r1[2 * ox + 1];
                    yo[ox] = (int8_t)(a > b ? a : b);
                }
            }
        }
        return;
    }
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
