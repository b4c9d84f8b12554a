//! Convolution kernels (`formats/scb.md` §7, "Convolution").
//!
//! The input is first *staged* into the op's scratch: zero-padded and split into the `s × s` phases of the
//! stride, so that for every tap `(ci, ky, kx)` the inputs of all outputs lie at one constant offset from the
//! outputs' *virtual positions* `v = oy · WS + ox` (`WS` the phase-plane width). An output plane is then a
//! contiguous run of `(OH − 1) · WS + OW` virtual positions, cut into vectors of the path's lane count and into
//! tiles of up to a dozen vectors whose accumulators stay in registers. Positions with `ox ≥ OW` are computed
//! and dropped at the store.
//!
//! - Float, sparse (CSR encodings): one output channel at a time; for each stored entry, in storage order,
//!   the weight is broadcast and multiplied into every vector of the tile. The column codes are read in place
//!   (gap bytes, u16 or u32 columns) and mapped to input offsets by a table built per run. Rice-coded and f16
//!   weights are decoded row by row into a small buffer first.
//! - Float, dense: four output channels at a time share each loaded input vector.
//! - Int8, dense: the staged input holds *channel quads* (4 channels per position, 4 bytes); int8
//!   convolution weights are stored in channel-quad column order (formats/scb.md §5), so 4 consecutive
//!   columns form one 4-byte weight word, and one 4-way dot product per lane (VNNI `vpdpbusd` on AVX-512)
//!   adds 4 products; four output channels share each loaded input vector.
//! - Int8, sparse: the staged input holds one byte plane per channel and stride phase; the stored entries of
//!   a row are taken four at a time, whatever their columns, into one weight word and four input offsets.
//!   Per group of `4 · L` positions the four shifted input runs are interleaved byte-wise in registers and one
//!   4-way dot product per lane adds all four entries ([`Lanes::group_mac`]), so every product computed is a
//!   stored weight's.
//! - Int8 accumulation is exact in i32 (wrapping), so any order gives the interpreter's sums; the output loop
//!   requantises, adds the residual and applies ReLU.
//!
//! Every output starts from its bias and, for float layers, adds the entries in storage order, so every path
//! computes the same sum per output, differing only in whether products are fused ([`crate::cpu`]).

#![allow(clippy::too_many_arguments)]

use crate::format::align_up;
use crate::lanes::Lanes;
use crate::rows::Rows;

/// Positions of zeros staged after the input (reads of the last vector of a plane go up to 63 past its end).
pub const STAGE_SLACK: usize = 64;
/// Rows of a dense tile.
const DENSE_ROWS: usize = 4;
/// Entries decoded at a time on the slow paths, and weight quads formed at a time for int8.
const CHUNK: usize = 256;

/// Geometry of a convolution: input (C, H, W), output (CO, OH, OW), square kernel K, stride S, padding P.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvGeom {
    pub c: usize,
    pub h: usize,
    pub w: usize,
    pub co: usize,
    pub oh: usize,
    pub ow: usize,
    pub k: usize,
    pub s: usize,
    pub p: usize,
}

/// Where an op's scratch regions lie, in bytes from the start of the scratch (16-byte aligned each).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvScratch {
    /// u32 input offset per tap (float: per column; int8: per channel quad).
    pub taps: usize,
    pub taps_bytes: usize,
    /// The staged input: f32 planes (float) or channel quads (int8), then [`STAGE_SLACK`] positions.
    pub staged: usize,
    pub staged_bytes: usize,
    /// Partial sums of one output channel over the virtual positions (f32 or i32).
    pub acc: usize,
    pub acc_bytes: usize,
    pub total: usize,
}

impl ConvGeom {
    /// Height of one stride phase of the padded input, `⌈(H + 2P) / S⌉`.
    pub fn phase_h(&self) -> usize {
        (self.h + 2 * self.p).div_ceil(self.s)
    }
    /// Width of one stride phase of the padded input, `⌈(W + 2P) / S⌉`: the row pitch of virtual positions.
    pub fn phase_w(&self) -> usize {
        (self.w + 2 * self.p).div_ceil(self.s)
    }
    fn phase_plane(&self) -> usize {
        self.phase_h() * self.phase_w()
    }
    /// Virtual positions from the first output to the last, `(OH − 1) · WS + OW`.
    pub fn virtual_len(&self) -> usize {
        (self.oh - 1) * self.phase_w() + self.ow
    }
    /// Input channel groups of the int8 staging, `⌈C / 4⌉`.
    pub fn groups(&self) -> usize {
        self.c.div_ceil(4)
    }
    /// Planes of the staged input: one per (channel or channel group, stride phase).
    fn staged_planes(&self, int8: bool) -> usize {
        let units = if int8 { self.groups() } else { self.c };
        units * self.s * self.s
    }
    /// The scratch layout of a float (`int8 = false`) or int8 convolution with this geometry.
    pub fn scratch(&self, int8: bool) -> ConvScratch {
        let kk = self.k * self.k;
        let taps_bytes = 4 * if int8 {
            self.groups() * kk
        } else {
            self.c * kk
        };
        let positions = self.staged_planes(int8) * self.phase_plane() + STAGE_SLACK;
        let staged_bytes = 4 * positions;
        let acc_bytes = 4 * (self.virtual_len().div_ceil(16) * 16);
        let staged = align_up(taps_bytes);
        let acc = staged + align_up(staged_bytes);
        ConvScratch {
            taps: 0,
            taps_bytes,
            staged,
            staged_bytes,
            acc,
            acc_bytes,
            total: acc + acc_bytes,
        }
    }
}

/// The weights of a convolution as the kernels read them.
pub(crate) struct ConvWeights<'a> {
    pub desc: crate::model::TensorDesc,
    /// The data section.
    pub data: &'a [u8],
}

/// What runs after the accumulation of an output vector.
#[derive(Clone, Copy)]
pub(crate) struct Epilogue<'a, T> {
    pub relu: bool,
    /// A buffer of the output's shape added before the ReLU.
    pub residual: Option<&'a [T]>,
}

/// Int8 requantisation of a convolution: per output channel `(m, sh)`, and for a fused residual the ADD's
/// `(ma, mb, sh)` (the convolution's own result, clamped to int8, is `a`).
#[derive(Clone, Copy)]
pub(crate) struct Requant<'a> {
    pub params: &'a [u8],
    pub add: Option<(i32, i32, u32)>,
}

impl Requant<'_> {
    #[inline]
    fn row(&self, r: usize) -> (i32, u32) {
        let at = 8 * r;
        let m = crate::bytes::i32_at(self.params, at);
        let sh = crate::bytes::u32_at(self.params, at + 4);
        (m, sh)
    }
}

/// Splits `scratch` into the tap table, the staged input and the partial-sum plane.
#[allow(clippy::type_complexity)]
fn split_scratch<'a>(
    scratch: &'a mut [u8],
    l: &ConvScratch,
) -> Option<(&'a mut [u32], &'a mut [u8], &'a mut [u8])> {
    if scratch.len() < l.total || scratch.as_ptr().align_offset(4) != 0 {
        return None;
    }
    let (taps, rest) = scratch.split_at_mut(l.staged);
    let (staged, acc) = rest.split_at_mut(l.acc - l.staged);
    // SAFETY: u32 has no invalid bit patterns; the start is 4-byte aligned (checked above) and align_to only
    // yields aligned elements.
    let (_, taps, _) = unsafe { taps.align_to_mut::<u32>() };
    Some((
        &mut taps[..l.taps_bytes / 4],
        &mut staged[..l.staged_bytes],
        &mut acc[..l.acc_bytes],
    ))
}

fn as_f32s(b: &mut [u8]) -> &mut [f32] {
    // SAFETY: every bit pattern is a valid f32; align_to only yields aligned elements.
    let (_, mid, _) = unsafe { b.align_to_mut::<f32>() };
    mid
}

fn as_i32s(b: &mut [u8]) -> &mut [i32] {
    // SAFETY: every bit pattern is a valid i32; align_to only yields aligned elements.
    let (_, mid, _) = unsafe { b.align_to_mut::<i32>() };
    mid
}

/// The offsets of taps `(u, ky, kx)` for `u` in `0..units`, in that (row-major) order, scaled by `unit`
/// bytes or elements: the offsets of unit 0 plus `u` times the stride of one unit's planes.
fn fill_taps(taps: &mut [u32], g: &ConvGeom, units: usize, unit: u32) {
    let kk = g.k * g.k;
    let (s, plane, ws) = (g.s, g.phase_plane(), g.phase_w());
    if taps.len() < units * kk {
        return;
    }
    let (first, rest) = taps.split_at_mut(kk);
    let mut i = 0;
    for ky in 0..g.k {
        for kx in 0..g.k {
            first[i] = unit * (((ky % s) * s + kx % s) * plane + (ky / s) * ws + kx / s) as u32;
            i += 1;
        }
    }
    let step = unit * (s * s * plane) as u32;
    for (u, chunk) in rest.chunks_exact_mut(kk).take(units - 1).enumerate() {
        let add = step * (u as u32 + 1);
        for (t, &f) in chunk.iter_mut().zip(first.iter()) {
            *t = f + add;
        }
    }
}

/// Input offsets of the float columns `(ci · K + ky) · K + kx`.
fn float_taps(taps: &mut [u32], g: &ConvGeom) {
    fill_taps(taps, g, g.c, 1);
}

/// Input byte offsets of the int8 channel-quad columns `group · K² + ky · K + kx` (4 bytes per position).
fn quad_taps(taps: &mut [u32], g: &ConvGeom) {
    fill_taps(taps, g, g.groups(), 4);
}

/// Input byte offsets in the byte planes of [`crate::stage::stage_i8_planes`] of channel `4 · group` at each quad column
/// `group · K² + ky · K + kx` (channel `4 · group + j` lies `j` channel strides further).
fn plane_taps(taps: &mut [u32], g: &ConvGeom) {
    fill_taps(taps, g, g.groups(), 1);
    let extra = (3 * g.s * g.s * g.phase_plane()) as u32;
    for (grp, chunk) in taps
        .chunks_exact_mut(g.k * g.k)
        .take(g.groups())
        .enumerate()
    {
        for t in chunk {
            *t += extra * grp as u32;
        }
    }
}

/// Stored entries of one row of a CSR tensor, read in place: `for_each(f)` calls `f(k, col)` in storage
/// order, `k` the entry's index in the values array.
pub(crate) trait ColCodes {
    fn for_each(&self, a: usize, b: usize, f: impl FnMut(usize, usize));
}

/// u8 gaps from the previous column + 1.
pub(crate) struct Gap8Codes<'a>(pub &'a [u8]);
/// u16 columns.
pub(crate) struct U16Codes<'a>(pub &'a [u8]);
/// u32 columns.
pub(crate) struct U32Codes<'a>(pub &'a [u8]);

impl ColCodes for Gap8Codes<'_> {
    #[inline(always)]
    fn for_each(&self, a: usize, b: usize, mut f: impl FnMut(usize, usize)) {
        let Some(codes) = self.0.get(a..b) else {
            return;
        };
        let mut next = 0usize;
        for (i, &c) in codes.iter().enumerate() {
            let col = next + c as usize;
            next = col + 1;
            f(a + i, col);
        }
    }
}

impl ColCodes for U16Codes<'_> {
    #[inline(always)]
    fn for_each(&self, a: usize, b: usize, mut f: impl FnMut(usize, usize)) {
        let Some(codes) = self.0.get(2 * a..2 * b) else {
            return;
        };
        for (i, c) in codes.chunks_exact(2).enumerate() {
            f(a + i, u16::from_le_bytes([c[0], c[1]]) as usize);
        }
    }
}

impl ColCodes for U32Codes<'_> {
    #[inline(always)]
    fn for_each(&self, a: usize, b: usize, mut f: impl FnMut(usize, usize)) {
        let Some(codes) = self.0.get(4 * a..4 * b) else {
            return;
        };
        for (i, c) in codes.chunks_exact(4).enumerate() {
            f(a + i, u32::from_le_bytes([c[0], c[1], c[2], c[3]]) as usize);
        }
    }
}

/// Marks a closure bound to a name as always inlined (an attribute on the closure expression is only
/// accepted in argument position).
#[inline(always)]
fn inlined<F>(f: F) -> F {
    f
}

/// A tile: `T` consecutive vectors from virtual position `v0`.
#[derive(Clone, Copy)]
struct Tile {
    v0: usize,
    vectors: usize,
}

/// The tiles of a plane of `len` virtual positions in vectors of `l` lanes, at most `max` vectors each, as
/// even as possible.
fn tiles(len: usize, l: usize, max: usize) -> impl Iterator<Item = Tile> {
    let nv = len.div_ceil(l);
    let n = nv.div_ceil(max).max(1);
    let per = nv.div_ceil(n);
    (0..n).filter_map(move |i| {
        let a = i * per;
        let b = ((i + 1) * per).min(nv);
        (a < b).then_some(Tile {
            v0: a * l,
            vectors: b - a,
        })
    })
}

/// The output segments of the vector at virtual position `v`: calls `f(lo, hi, at)` for each run of lanes
/// `lo..hi` that are real outputs, lane `lo` being output element `at` of the (OH × OW) plane.
#[inline(always)]
fn segments(v: usize, l: usize, g: &ConvGeom, mut f: impl FnMut(usize, usize, usize)) {
    let ws = g.phase_w();
    let (mut oy, mut ox) = (v / ws, v % ws);
    let mut lane = 0;
    while lane < l && oy < g.oh {
        if ox < g.ow {
            let n = (g.ow - ox).min(l - lane);
            f(lane, lane + n, oy * g.ow + ox);
            lane += n;
            ox += n;
        } else {
            lane += ws - ox;
            ox = 0;
            oy += 1;
        }
    }
}

/// Stores a float tile of output channel plane `y` (with the residual plane added, then ReLU).
#[inline(always)]
unsafe fn store_f32<S: Lanes, const T: usize>(
    acc: &[S::F; T],
    tile: Tile,
    y: &mut [f32],
    g: &ConvGeom,
    ep: &Epilogue<'_, f32>,
    res: Option<&[f32]>,
) {
    for (i, &a) in acc.iter().enumerate().take(tile.vectors) {
        segments(
            tile.v0 + i * S::L,
            S::L,
            g,
            #[inline(always)]
            |lo, hi, at| {
                // SAFETY: `segments` yields lanes whose output index at − lo + lane lies in the plane; the
                // pointers are offset by −lo and only lanes lo..hi are touched.
                unsafe {
                    let mut v = a;
                    if let Some(r) = res {
                        v = S::add(v, S::load_part(r.as_ptr().add(at).wrapping_sub(lo), lo, hi));
                    }
                    if ep.relu {
                        v = S::relu(v);
                    }
                    S::store_part(y.as_mut_ptr().add(at).wrapping_sub(lo), v, lo, hi);
                }
            },
        );
    }
}

/// Accumulates the entries `a..b` of one sparse float row into a tile.
#[inline(always)]
unsafe fn sparse_tile_f32<S: Lanes, C: ColCodes, const T: usize>(
    mut acc: [S::F; T],
    xs: &[f32],
    tile: Tile,
    codes: &C,
    a: usize,
    b: usize,
    vals: &[u8],
    taps: &[u32],
) -> [S::F; T] {
    let base = xs.as_ptr().wrapping_add(tile.v0);
    let vals = vals.as_ptr() as *const f32;
    codes.for_each(
        a,
        b,
        #[inline(always)]
        |k, col| {
            // SAFETY: the model is validated (k < nnz, col < cols, so the tap exists); every tap offset plus the
            // tile's last lane lies inside the staged input and its slack (module docs).
            unsafe {
                let w = S::splat(core::ptr::read_unaligned(vals.add(k)));
                let p = base.add(*taps.get_unchecked(col) as usize);
                for (t, v) in acc.iter_mut().enumerate() {
                    *v = S::fma(w, S::load(p.add(t * S::L)), *v);
                }
            }
        },
    );
    acc
}

/// Accumulates resolved entries (input offset, value) into a tile.
#[inline(always)]
unsafe fn resolved_tile_f32<S: Lanes, const T: usize>(
    mut acc: [S::F; T],
    xs: &[f32],
    tile: Tile,
    offs: &[u32],
    vals: &[f32],
) -> [S::F; T] {
    let base = xs.as_ptr().wrapping_add(tile.v0);
    for (&o, &w) in offs.iter().zip(vals) {
        // SAFETY: as for `sparse_tile_f32`.
        unsafe {
            let w = S::splat(w);
            let p = base.add(o as usize);
            for (t, v) in acc.iter_mut().enumerate() {
                *v = S::fma(w, S::load(p.add(t * S::L)), *v);
            }
        }
    }
    acc
}

/// Dense float rows `r0 .. r0 + B` over one tile: each loaded input vector serves the `B` rows.
#[inline(always)]
unsafe fn dense_tile_f32<S: Lanes, const B: usize, const T: usize>(
    mut acc: [[S::F; T]; B],
    xs: &[f32],
    tile: Tile,
    vals: &[u8],
    r0: usize,
    cols: usize,
    taps: &[u32],
) -> [[S::F; T]; B] {
    let base = xs.as_ptr().wrapping_add(tile.v0);
    let w0 = (vals.as_ptr() as *const f32).wrapping_add(r0 * cols);
    for (j, &off) in taps.iter().enumerate().take(cols) {
        // SAFETY: rows r0..r0+B exist (the caller checks), j < cols; offsets as for `sparse_tile_f32`.
        unsafe {
            let p = base.add(off as usize);
            let mut xv = [S::splat(0.0); T];
            for (t, x) in xv.iter_mut().enumerate() {
                *x = S::load(p.add(t * S::L));
            }
            for (b, row) in acc.iter_mut().enumerate() {
                let w = S::splat(core::ptr::read_unaligned(w0.add(b * cols + j)));
                for (t, v) in row.iter_mut().enumerate() {
                    *v = S::fma(w, xv[t], *v);
                }
            }
        }
    }
    acc
}

/// Expands `$body!(T)` for the tile's vector count `$t` (1 ..= 12).
macro_rules! by_tile {
    ($t:expr, $body:ident) => {
        match $t {
            1 => $body!(1),
            2 => $body!(2),
            3 => $body!(3),
            4 => $body!(4),
            5 => $body!(5),
            6 => $body!(6),
            7 => $body!(7),
            8 => $body!(8),
            9 => $body!(9),
            10 => $body!(10),
            11 => $body!(11),
            _ => $body!(12),
        }
    };
}

/// The per-row bias of a float convolution.
pub(crate) type BiasF32<'a> = &'a dyn Fn(usize) -> f32;

/// A float convolution on path `S`. `tile_outer` selects the loop order of sparse layers: all output
/// channels for one tile of positions at a time (input tile stays in cache), or all tiles of one channel.
/// Returns `false` (computing nothing) when the scratch is too small or misaligned, which a validated model
/// never causes.
#[inline(always)]
pub(crate) unsafe fn conv_f32<S: Lanes>(
    x: &[f32],
    y: &mut [f32],
    scratch: &mut [u8],
    g: &ConvGeom,
    w: &ConvWeights<'_>,
    bias: BiasF32<'_>,
    ep: Epilogue<'_, f32>,
    tile_outer: bool,
) -> bool {
    let layout = g.scratch(false);
    let Some((taps, staged, acc_plane)) = split_scratch(scratch, &layout) else {
        return false;
    };
    let staged = as_f32s(staged);
    let acc_plane = as_f32s(acc_plane);
    // SAFETY: the caller runs path `S` only where the CPU has it.
    unsafe { crate::stage::stage_f32::<S>(x, staged, g) };
    float_taps(taps, g);
    let plane = g.oh * g.ow;
    let (t, data) = (&w.desc, w.data);
    let vals = crate::weights::values_bytes(data, t);
    let fast_f32 = t.dtype == crate::format::dtype::F32;
    use crate::format::encoding as enc;
    let codes = data.get(t.index_off as usize..).unwrap_or(&[]);
    let indptr = data.get(t.indptr_off as usize..).unwrap_or(&[]);
    let row_range = |r: usize| {
        (
            crate::bytes::u32_at(indptr, 4 * r) as usize,
            crate::bytes::u32_at(indptr, 4 * r + 4) as usize,
        )
    };
    if y.len() < g.co * plane {
        return false;
    }
    // SAFETY (all kernel calls below): the staged input and tap table were just built for `g`; tile vectors
    // read at most `vlen + L − 1 + max tap < staged.len()`.
    match (t.encoding, fast_f32) {
        (enc::DENSE, true) => dense_rows_f32::<S>(staged, y, g, vals, t.cols(), taps, bias, &ep),
        (enc::CSR_GAP8, true) => sparse_rows::<S, _>(
            &Gap8Codes(codes),
            staged,
            y,
            g,
            vals,
            taps,
            bias,
            &ep,
            tile_outer,
            &row_range,
        ),
        (enc::CSR_IDX16, true) => sparse_rows::<S, _>(
            &U16Codes(codes),
            staged,
            y,
            g,
            vals,
            taps,
            bias,
            &ep,
            tile_outer,
            &row_range,
        ),
        (enc::CSR_IDX32, true) => sparse_rows::<S, _>(
            &U32Codes(codes),
            staged,
            y,
            g,
            vals,
            taps,
            bias,
            &ep,
            tile_outer,
            &row_range,
        ),
        _ => {
            let value = |k: usize| crate::weights::value_f32(data, t, k);
            crate::rows::with_rows!(data, t, |rows| decoded_rows::<S>(
                rows, &value, staged, y, acc_plane, g, taps, bias, &ep
            ));
        }
    }
    true
}

/// Dense float rows, [`DENSE_ROWS`] at a time (the last `CO mod 4` one at a time), tiles outermost.
#[inline(always)]
fn dense_rows_f32<S: Lanes>(
    staged: &[f32],
    y: &mut [f32],
    g: &ConvGeom,
    vals: &[u8],
    cols: usize,
    taps: &[u32],
    bias: BiasF32<'_>,
    ep: &Epilogue<'_, f32>,
) {
    let plane = g.oh * g.ow;
    if vals.len() < 4 * g.co * cols {
        return;
    }
    let res = |r: usize| {
        ep.residual
            .and_then(|res| res.get(r * plane..(r + 1) * plane))
    };
    for tile in tiles(g.virtual_len(), S::L, S::DENSE_TILE) {
        let mut r0 = 0;
        while r0 < g.co {
            let four = r0 + DENSE_ROWS <= g.co;
            macro_rules! run {
                ($n:literal) => {{
                    // SAFETY: rows r0.. exist (vals checked above); see `conv_f32` for the input bounds.
                    unsafe {
                        if four {
                            let mut acc = [[S::splat(0.0); $n]; DENSE_ROWS];
                            for (i, a) in acc.iter_mut().enumerate() {
                                *a = [S::splat(bias(r0 + i)); $n];
                            }
                            let acc = dense_tile_f32::<S, DENSE_ROWS, $n>(acc, staged, tile, vals, r0, cols, taps);
                            for (i, a) in acc.iter().enumerate() {
                                let r = r0 + i;
                                store_f32::<S, $n>(a, tile, &mut y[r * plane..(r + 1) * plane], g, ep, res(r));
                            }
                        } else {
                            let acc = [[S::splat(bias(r0)); $n]; 1];
                            let acc = dense_tile_f32::<S, 1, $n>(acc, staged, tile, vals, r0, cols, taps);
                            store_f32::<S, $n>(&acc[0], tile, &mut y[r0 * plane..(r0 + 1) * plane], g, ep, res(r0));
                        }
                    }
                }};
            }
            match tile.vectors {
                1 => run!(1),
                2 => run!(2),
                3 => run!(3),
                4 => run!(4),
                5 => run!(5),
                _ => run!(6),
            }
            r0 += if four { DENSE_ROWS } else { 1 };
        }
    }
}

/// Sparse float rows read in place, in either loop order.
#[inline(always)]
fn sparse_rows<S: Lanes, C: ColCodes>(
    codes: &C,
    staged: &[f32],
    y: &mut [f32],
    g: &ConvGeom,
    vals: &[u8],
    taps: &[u32],
    bias: BiasF32<'_>,
    ep: &Epilogue<'_, f32>,
    tile_outer: bool,
    row_range: &dyn Fn(usize) -> (usize, usize),
) {
    let plane = g.oh * g.ow;
    let vlen = g.virtual_len();
    let one = inlined(
        #[inline(always)]
        |r: usize, tile: Tile, y: &mut [f32]| {
            let (a, b) = row_range(r);
            let res = ep
                .residual
                .and_then(|res| res.get(r * plane..(r + 1) * plane));
            let yp = &mut y[r * plane..(r + 1) * plane];
            macro_rules! run {
                ($n:literal) => {{
                    // SAFETY: see `conv_f32`.
                    unsafe {
                        let acc = [S::splat(bias(r)); $n];
                        let acc =
                            sparse_tile_f32::<S, C, $n>(acc, staged, tile, codes, a, b, vals, taps);
                        store_f32::<S, $n>(&acc, tile, yp, g, ep, res);
                    }
                }};
            }
            by_tile!(tile.vectors, run);
        },
    );
    if tile_outer {
        for tile in tiles(vlen, S::L, S::SPARSE_TILE) {
            for r in 0..g.co {
                one(r, tile, y);
            }
        }
    } else {
        for r in 0..g.co {
            for tile in tiles(vlen, S::L, S::SPARSE_TILE) {
                one(r, tile, y);
            }
        }
    }
}

/// Float rows of any encoding and value type, decoded [`CHUNK`] entries at a time; partial sums of a row
/// wait in `acc_plane`.
#[inline(always)]
fn decoded_rows<S: Lanes>(
    rows: &mut impl Rows,
    value: &dyn Fn(usize) -> f32,
    staged: &[f32],
    y: &mut [f32],
    acc_plane: &mut [f32],
    g: &ConvGeom,
    taps: &[u32],
    bias: BiasF32<'_>,
    ep: &Epilogue<'_, f32>,
) {
    let plane = g.oh * g.ow;
    let vlen = g.virtual_len();
    let nv = vlen.div_ceil(S::L);
    if acc_plane.len() < nv * S::L {
        return;
    }
    let mut offs = [0u32; CHUNK];
    let mut vals = [0f32; CHUNK];
    for r in 0..g.co {
        let b = bias(r);
        acc_plane[..nv * S::L].fill(b);
        let mut n = 0;
        let flush = inlined(
            #[inline(always)]
            |offs: &[u32], vals: &[f32], acc_plane: &mut [f32]| {
                for tile in tiles(vlen, S::L, S::SPARSE_TILE) {
                    macro_rules! run {
                        ($n:literal) => {{
                            // SAFETY: see `conv_f32`; the partial-sum plane holds nv·L floats.
                            unsafe {
                                let ap = acc_plane.as_mut_ptr().add(tile.v0);
                                let mut acc = [S::splat(0.0); $n];
                                for (t, a) in acc.iter_mut().enumerate() {
                                    *a = S::load(ap.add(t * S::L));
                                }
                                let acc = resolved_tile_f32::<S, $n>(acc, staged, tile, offs, vals);
                                for (t, a) in acc.iter().enumerate() {
                                    S::store(ap.add(t * S::L), *a);
                                }
                            }
                        }};
                    }
                    by_tile!(tile.vectors, run);
                }
            },
        );
        rows.row(
            r,
            #[inline(always)]
            |col, k| {
                offs[n] = taps.get(col).copied().unwrap_or(0);
                vals[n] = value(k);
                n += 1;
                if n == CHUNK {
                    flush(&offs, &vals, acc_plane);
                    n = 0;
                }
            },
        );
        if n > 0 {
            flush(&offs[..n], &vals[..n], acc_plane);
        }
        let res = ep
            .residual
            .and_then(|res| res.get(r * plane..(r + 1) * plane));
        let yp = &mut y[r * plane..(r + 1) * plane];
        for v in (0..nv).map(|i| i * S::L) {
            // SAFETY: v + L ≤ nv·L ≤ acc_plane.len().
            let a = [unsafe { S::load(acc_plane.as_ptr().add(v)) }];
            // SAFETY: see `store_f32`.
            unsafe { store_f32::<S, 1>(&a, Tile { v0: v, vectors: 1 }, yp, g, ep, res) };
        }
    }
}

/// Positions of the int8 epilogue's byte buffer: at least the positions of the widest int8 tile of every path
/// (`DENSE_TILE · L` and `GROUP_TILE · 4 · L`).
const TILE_BYTES: usize = 256;

/// The int8 epilogue of one tile of output channel `r`: correction, requantisation, then per output row the
/// tile's positions `ox < OW` copied to the plane `y`, or added to the residual there (fused ADD, then ReLU).
/// `acc` holds the tile's vectors in position order (`tile.vectors` of them, at most [`TILE_BYTES`] / L).
#[inline(always)]
unsafe fn store_i8<S: Lanes>(
    acc: &[S::I],
    tile: Tile,
    y: &mut [i8],
    g: &ConvGeom,
    rq: &Requant<'_>,
    r: usize,
    correction: i32,
    ep: &Epilogue<'_, i8>,
    res: Option<&[i8]>,
) {
    let (m, sh) = rq.row(r);
    let relu_lo = if ep.relu { 0 } else { -128 };
    let fused = match (rq.add, res) {
        (Some(add), Some(rp)) => Some((add, rp)),
        _ => None,
    };
    let lo = if fused.is_some() { -128 } else { relu_lo };
    let mut bytes = [0i8; TILE_BYTES];
    let n = tile.vectors.min(acc.len()).min(TILE_BYTES / S::L);
    // SAFETY: the path is available (the caller's contract); vectors 4j .. 4j + 4 fill bytes 4j·L ..
    // (4j + 4)·L ≤ TILE_BYTES (n ≤ TILE_BYTES / L, a multiple of 4 vectors on every path).
    unsafe {
        let corr = S::splat_i(correction);
        for (j, four) in acc[..n].chunks(4).enumerate() {
            let mut q = [S::splat_i(0); 4];
            for (d, &a) in q.iter_mut().zip(four) {
                *d = S::requant(S::add_i(a, corr), m, sh, lo);
            }
            S::store_i8x4(bytes.as_mut_ptr().add(4 * j * S::L), q);
        }
    }
    let ws = g.phase_w();
    let end = tile.v0 + n * S::L;
    let mut oy = tile.v0 / ws;
    while oy < g.oh && oy * ws < end {
        let row = oy * ws;
        let (a, b) = (row.max(tile.v0), (row + g.ow).min(end));
        if a < b {
            let src = &bytes[a - tile.v0..b - tile.v0];
            let at = oy * g.ow + a - row;
            let Some(dst) = y.get_mut(at..at + src.len()) else {
                return;
            };
            match fused {
                None => dst.copy_from_slice(src),
                Some(((ma, mb, sa), rp)) => {
                    let Some(rv) = rp.get(at..at + src.len()) else {
                        return;
                    };
                    // SAFETY: each chunk of up to L bytes lies inside `src`, `rv` and `dst`.
                    unsafe { add_residual_i8::<S>(src, rv, dst, ma, mb, sa, relu_lo) };
                }
            }
        }
        oy += 1;
    }
}

/// `dst = ADD(a, res)` (formats/scb.md §8) over equal-length byte runs, L at a time.
#[inline(always)]
unsafe fn add_residual_i8<S: Lanes>(
    a: &[i8],
    res: &[i8],
    dst: &mut [i8],
    ma: i32,
    mb: i32,
    sh: u32,
    lo: i32,
) {
    let n = a.len().min(res.len()).min(dst.len());
    let mut j = 0;
    while j < n {
        let k = (n - j).min(S::L);
        // SAFETY: bytes j .. j + k exist in all three runs; the path is available.
        unsafe {
            let av = S::load_i8_part(a.as_ptr().add(j), 0, k);
            let rv = S::load_i8_part(res.as_ptr().add(j), 0, k);
            let v = S::add_requant(av, ma, rv, mb, sh, lo);
            S::store_i8_part(dst.as_mut_ptr().add(j), v, 0, k);
        }
        j += k;
    }
}

/// Dense int8 rows `r0 .. r0 + B` (channel-quad order: row `r` is `cols / 4` little-endian words).
#[inline(always)]
unsafe fn dense_quad_tile<S: Lanes, const B: usize, const T: usize>(
    mut acc: [[S::I; T]; B],
    xs: &[u8],
    tile: Tile,
    vals: &[u8],
    r0: usize,
    cols: usize,
    taps: &[u32],
) -> [[S::I; T]; B] {
    let base = xs.as_ptr().wrapping_add(4 * tile.v0);
    let w0 = vals.as_ptr().wrapping_add(r0 * cols) as *const u32;
    for (q, &off) in taps.iter().enumerate().take(cols / 4) {
        // SAFETY: rows r0..r0+B exist (the caller checks); offsets as for `quad_tile`.
        unsafe {
            let p = base.add(off as usize);
            for (b, row) in acc.iter_mut().enumerate() {
                let w = S::weight_quad(u32::from_le(core::ptr::read_unaligned(
                    w0.add(b * cols / 4 + q),
                )));
                for (t, v) in row.iter_mut().enumerate() {
                    *v = S::quad_mac(*v, p.add(4 * t * S::L), w);
                }
            }
        }
    }
    acc
}

/// An int8 convolution on path `S` (weights in channel-quad column order). Returns `false` (computing
/// nothing) when the scratch is too small or misaligned, which a validated model never causes.
#[inline(always)]
pub(crate) unsafe fn conv_i8<S: Lanes>(
    x: &[i8],
    y: &mut [i8],
    scratch: &mut [u8],
    g: &ConvGeom,
    w: &ConvWeights<'_>,
    bias: &dyn Fn(usize) -> i32,
    rq: Requant<'_>,
    ep: Epilogue<'_, i8>,
) -> bool {
    let layout = g.scratch(true);
    let Some((taps, staged, acc_plane)) = split_scratch(scratch, &layout) else {
        return false;
    };
    let acc_plane = as_i32s(acc_plane);
    let plane = g.oh * g.ow;
    if y.len() < g.co * plane {
        return false;
    }
    let (t, data) = (&w.desc, w.data);
    let vals = crate::weights::values_bytes(data, t);
    let vlen = g.virtual_len();
    let cols = t.cols();
    if t.encoding == crate::format::encoding::DENSE {
        crate::stage::stage_i8_quads(x, staged, g, S::UNSIGNED_QUADS);
        quad_taps(taps, g);
        dense_rows_i8::<S>(staged, y, g, vals, cols, taps, bias, &rq, &ep);
        return true;
    }
    if acc_plane.len() < vlen.div_ceil(S::L) * S::L
        || staged.len() < g.c * g.s * g.s * g.phase_plane() + STAGE_SLACK
    {
        return false;
    }
    crate::stage::stage_i8_planes(x, staged, g, S::UNSIGNED_QUADS);
    plane_taps(taps, g);
    crate::rows::with_rows!(data, t, |rows| group_rows::<S>(
        rows, vals, staged, y, acc_plane, g, taps, bias, &rq, &ep
    ));
    true
}

/// Dense int8 rows (channel-quad order), [`DENSE_ROWS`] at a time, tiles outermost.
#[inline(always)]
fn dense_rows_i8<S: Lanes>(
    staged: &[u8],
    y: &mut [i8],
    g: &ConvGeom,
    vals: &[u8],
    cols: usize,
    taps: &[u32],
    bias: &dyn Fn(usize) -> i32,
    rq: &Requant<'_>,
    ep: &Epilogue<'_, i8>,
) {
    let plane = g.oh * g.ow;
    if vals.len() < g.co * cols || !cols.is_multiple_of(4) {
        return;
    }
    let res = |r: usize| {
        ep.residual
            .and_then(|res| res.get(r * plane..(r + 1) * plane))
    };
    let correction = |r: usize| -> i32 {
        if !S::UNSIGNED_QUADS {
            return 0;
        }
        let sum: i32 = vals[r * cols..(r + 1) * cols]
            .iter()
            .map(|&b| b as i8 as i32)
            .sum();
        sum.wrapping_mul(-128)
    };
    for tile in tiles(g.virtual_len(), S::L, S::DENSE_TILE) {
        let mut r0 = 0;
        while r0 < g.co {
            let four = r0 + DENSE_ROWS <= g.co;
            macro_rules! run {
                ($n:literal) => {{
                    // SAFETY: rows r0.. exist (vals checked above); see `conv_f32` for the input bounds.
                    unsafe {
                        if four {
                            let mut acc = [[S::splat_i(0); $n]; DENSE_ROWS];
                            for (i, a) in acc.iter_mut().enumerate() {
                                *a = [S::splat_i(bias(r0 + i)); $n];
                            }
                            let acc = dense_quad_tile::<S, DENSE_ROWS, $n>(acc, staged, tile, vals, r0, cols, taps);
                            for (i, a) in acc.iter().enumerate() {
                                let r = r0 + i;
                                let yp = &mut y[r * plane..(r + 1) * plane];
                                store_i8::<S>(a, tile, yp, g, rq, r, correction(r), ep, res(r));
                            }
                        } else {
                            let acc = [[S::splat_i(bias(r0)); $n]; 1];
                            let acc = dense_quad_tile::<S, 1, $n>(acc, staged, tile, vals, r0, cols, taps);
                            let yp = &mut y[r0 * plane..(r0 + 1) * plane];
                            store_i8::<S>(&acc[0], tile, yp, g, rq, r0, correction(r0), ep, res(r0));
                        }
                    }
                }};
            }
            match tile.vectors {
                1 => run!(1),
                2 => run!(2),
                3 => run!(3),
                4 => run!(4),
                5 => run!(5),
                _ => run!(6),
            }
            r0 += if four { DENSE_ROWS } else { 1 };
        }
    }
}

/// Sparse int8 rows: the stored entries of each row, in storage order, are taken four at a time (the last
/// group padded with zero weights) into weight quads with the input offsets of their four entries ([`CHUNK`]
/// groups at a time), which run over every tile of position groups; a row with more groups keeps its partial
/// sums in `acc_plane`.
#[inline(always)]
fn group_rows<S: Lanes>(
    rows: &mut impl Rows,
    vals: &[u8],
    staged: &[u8],
    y: &mut [i8],
    acc_plane: &mut [i32],
    g: &ConvGeom,
    taps: &[u32],
    bias: &dyn Fn(usize) -> i32,
    rq: &Requant<'_>,
    ep: &Epilogue<'_, i8>,
) {
    let plane = g.oh * g.ow;
    let vlen = g.virtual_len();
    let channel = (g.s * g.s * g.phase_plane()) as u32;
    let mut offs = [0u32; 4 * CHUNK];
    let mut words = [0u32; CHUNK];
    for r in 0..g.co {
        let mut n = 0usize;
        let mut chunks = 0usize;
        let mut sum_w = 0i32;
        let res = ep
            .residual
            .and_then(|res| res.get(r * plane..(r + 1) * plane));
        let run_chunk = inlined(
            #[inline(always)]
            |offs: &[u32],
             words: &[u32],
             first: bool,
             last: bool,
             corr: i32,
             y: &mut [i8],
             acc_plane: &mut [i32]| {
                for tile in tiles(vlen, 4 * S::L, S::GROUP_TILE) {
                    macro_rules! run {
                        ($n:literal) => {{
                            // SAFETY: see `conv_f32`; a group reads 4·L bytes from each offset, within the
                            // staged planes and their slack; the partial-sum plane holds nv·L ints.
                            unsafe {
                                group_tile::<S, $n>(
                                    staged,
                                    tile,
                                    offs,
                                    words,
                                    bias(r),
                                    first,
                                    last,
                                    corr,
                                    &mut y[r * plane..(r + 1) * plane],
                                    acc_plane,
                                    g,
                                    rq,
                                    r,
                                    ep,
                                    res,
                                );
                            }
                        }};
                    }
                    match tile.vectors {
                        1 => run!(1),
                        2 => run!(2),
                        _ => run!(3),
                    }
                }
            },
        );
        let mut k0 = usize::MAX;
        let pack = |words: &mut [u32], k0: usize, n: usize, sum_w: &mut i32| -> usize {
            let src = vals.get(k0..k0 + n).unwrap_or(&[]);
            let quads = src.chunks_exact(4);
            let tail = quads.remainder();
            let mut groups = 0;
            for (wd, q) in words.iter_mut().zip(quads) {
                *wd = u32::from_le_bytes([q[0], q[1], q[2], q[3]]);
                groups += 1;
            }
            if !tail.is_empty() {
                let mut b = [0u8; 4];
                b[..tail.len()].copy_from_slice(tail);
                if let Some(wd) = words.get_mut(groups) {
                    *wd = u32::from_le_bytes(b);
                    groups += 1;
                }
            }
            *sum_w += src.iter().map(|&b| b as i8 as i32).sum::<i32>();
            groups
        };
        rows.row(
            r,
            #[inline(always)]
            |col, k| {
                if n == 0 {
                    k0 = k;
                }
                offs[n] = taps.get(col / 4).copied().unwrap_or(0) + channel * (col % 4) as u32;
                n += 1;
                if n == 4 * CHUNK {
                    pack(&mut words, k0, n, &mut sum_w);
                    run_chunk(&offs, &words, chunks == 0, false, 0, y, acc_plane);
                    chunks += 1;
                    n = 0;
                }
            },
        );
        let groups = if n == 0 {
            0
        } else {
            pack(&mut words, k0, n, &mut sum_w)
        };
        for i in n..4 * groups {
            offs[i] = offs[4 * (groups - 1)];
        }
        let corr = if S::UNSIGNED_QUADS {
            sum_w.wrapping_mul(-128)
        } else {
            0
        };
        run_chunk(
            &offs[..4 * groups],
            &words[..groups],
            chunks == 0,
            true,
            corr,
            y,
            acc_plane,
        );
    }
}

/// One tile of `T` position groups of output channel `r`: from the bias (`first`) or the partial sums, the
/// weight quads `words` (entry offsets `offs`, four per quad), then the epilogue (`last`) or back to the
/// partial sums.
#[inline(always)]
unsafe fn group_tile<S: Lanes, const T: usize>(
    xs: &[u8],
    tile: Tile,
    offs: &[u32],
    words: &[u32],
    bias: i32,
    first: bool,
    last: bool,
    corr: i32,
    y: &mut [i8],
    acc_plane: &mut [i32],
    g: &ConvGeom,
    rq: &Requant<'_>,
    r: usize,
    ep: &Epilogue<'_, i8>,
    res: Option<&[i8]>,
) {
    let group = 4 * S::L;
    // SAFETY: per the caller.
    unsafe {
        let vlen = g.virtual_len();
        let ap = acc_plane.as_mut_ptr();
        let mut acc = [[S::splat_i(bias); 4]; T];
        if !first {
            for (t, a) in acc.iter_mut().enumerate() {
                let mut v = [S::splat_i(0); 4];
                for (j, x) in v.iter_mut().enumerate() {
                    let at = tile.v0 + t * group + j * S::L;
                    if at < vlen {
                        *x = S::load_i(ap.add(at));
                    }
                }
                *a = S::group_unorder(v);
            }
        }
        let base = xs.as_ptr().wrapping_add(tile.v0);
        for (o, &word) in offs.chunks_exact(4).zip(words) {
            let w = S::weight_quad(word);
            let p = [
                base.add(o[0] as usize),
                base.add(o[1] as usize),
                base.add(o[2] as usize),
                base.add(o[3] as usize),
            ];
            for (t, a) in acc.iter_mut().enumerate() {
                *a = S::group_mac(*a, p.map(|q| q.add(t * group)), w);
            }
        }
        if !last {
            for (t, a) in acc.iter().enumerate() {
                for (j, v) in S::group_order(*a).iter().enumerate() {
                    let at = tile.v0 + t * group + j * S::L;
                    if at < vlen {
                        S::store_i(ap.add(at), *v);
                    }
                }
            }
            return;
        }
        let mut ordered = [[S::splat_i(0); 4]; T];
        for (o, a) in ordered.iter_mut().zip(&acc) {
            *o = S::group_order(*a);
        }
        let vectors = (vlen - tile.v0).div_ceil(S::L).min(4 * T);
        let tile = Tile {
            v0: tile.v0,
            vectors,
        };
        store_i8::<S>(ordered.as_flattened(), tile, y, g, rq, r, corr, ep, res);
    }
}

/// The column of a stored int8 convolution weight in channel-quad order, as the natural column
/// `(ci · K + ky) · K + kx` of its (CO, CI, K, K) shape, or `None` for a padding channel `ci ≥ CI`.
pub fn natural_column(quad_col: usize, ci: usize, k: usize) -> Option<usize> {
    let kk = k * k;
    let (q, j) = (quad_col / 4, quad_col % 4);
    let (grp, tap) = (q / kk, q % kk);
    let c = 4 * grp + j;
    (c < ci).then_some(c * kk + tap)
}

/// The channel-quad column of natural column `col = (ci · K + ky) · K + kx`.
pub fn quad_column(col: usize, k: usize) -> usize {
    let kk = k * k;
    let (c, tap) = (col / kk, col % kk);
    ((c / 4) * kk + tap) * 4 + c % 4
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiles_cover_the_plane_evenly() {
        for len in [1usize, 5, 16, 17, 80, 286, 1086] {
            for l in [8, 16] {
                for max in [1, 6, 12] {
                    let nv = len.div_ceil(l);
                    let mut next = 0;
                    let mut first = 0;
                    for (i, t) in tiles(len, l, max).enumerate() {
                        assert_eq!(t.v0, next * l);
                        assert!(t.vectors >= 1 && t.vectors <= max);
                        if i == 0 {
                            first = t.vectors;
                        } else {
                            assert!(t.vectors <= first);
                        }
                        next += t.vectors;
                    }
                    assert_eq!(next, nv, "{len} {l} {max}");
                    assert_eq!(first, nv.div_ceil(nv.div_ceil(max)));
                }
            }
        }
    }

    #[test]
    fn segments_visit_every_output_once() {
        for (h, w, k, s, p) in [
            (5, 5, 3, 1, 1),
            (7, 4, 3, 2, 1),
            (9, 12, 5, 1, 2),
            (8, 8, 1, 2, 0),
            (3, 3, 3, 1, 0),
        ] {
            let oh = (h + 2 * p - k) / s + 1;
            let ow = (w + 2 * p - k) / s + 1;
            let g = ConvGeom {
                c: 1,
                h,
                w,
                co: 1,
                oh,
                ow,
                k,
                s,
                p,
            };
            for l in [4, 8, 16] {
                let mut seen = [0u8; 256];
                let mut v = 0;
                while v < g.virtual_len() {
                    segments(v, l, &g, |lo, hi, at| {
                        for i in lo..hi {
                            seen[at + i - lo] += 1;
                            let pos = v + i;
                            assert_eq!(at + i - lo, (pos / g.phase_w()) * ow + pos % g.phase_w());
                        }
                    });
                    v += l;
                }
                assert!(seen[..oh * ow].iter().all(|&n| n == 1));
            }
        }
    }

    #[test]
    fn quad_columns_round_trip() {
        for (ci, k) in [(1, 5), (3, 3), (16, 3), (6, 1), (7, 2)] {
            for col in 0..ci * k * k {
                let q = quad_column(col, k);
                assert!(q < ci.div_ceil(4) * 4 * k * k);
                assert_eq!(natural_column(q, ci, k), Some(col));
            }
            let padded =
                (0..ci.div_ceil(4) * 4 * k * k).filter(|&q| natural_column(q, ci, k).is_none());
            assert_eq!(padded.count(), (ci.div_ceil(4) * 4 - ci) * k * k);
        }
    }
}
