
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
