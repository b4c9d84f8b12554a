//! Training-time augmentation: random crop with zero padding and random horizontal flip.
//!
//! Definition. With padding `p`, the image is padded by `p` zero pixels on every side and an H×W window is cut at
//! offset `(p + dy, p + dx)` with `dy, dx` uniform in `[-p, p]`; then, if drawn, the window is mirrored left to
//! right. For output pixel `(y, x)` the source is `(y + dy, x' + dx)` with `x' = W − 1 − x` when flipped and
//! `x' = x` otherwise; a source outside the image reads as the byte 0 (padding happens before normalisation, as in
//! the usual CIFAR recipe).

use rand::RngCore;
use serde::{Deserialize, Serialize};

use super::order;

/// Augmentation settings: random crop with `crop_padding` zero pixels, horizontal flip with probability ½.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct Augment {
    pub crop_padding: usize,
    pub hflip: bool,
}

/// One image's drawn transform: the crop shift and whether it is mirrored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Draw {
    pub dy: isize,
    pub dx: isize,
    pub flip: bool,
}

impl Augment {
    /// Whether the settings leave every image unchanged.
    pub fn is_identity(&self) -> bool {
        self.crop_padding == 0 && !self.hflip
    }

    /// The transforms of the `n` images of a batch, a pure function of `(self, n, aug_seed)`. Each image consumes
    /// the same number of draws whatever the settings, so image `i`'s transform does not depend on `n`.
    pub fn draws(&self, n: usize, aug_seed: u64) -> Vec<Draw> {
        let mut rng = order::rng(aug_seed, 0);
        let p = self.crop_padding as u64;
        (0..n)
            .map(|_| {
                let dy = order::below(&mut rng, 2 * p + 1) as isize - p as isize;
                let dx = order::below(&mut rng, 2 * p + 1) as isize - p as isize;
                let flip = rng.next_u64() & 1 == 1;
                Draw {
                    dy,
                    dx,
                    flip: self.hflip && flip,
                }
            })
            .collect()
    }
}

/// Writes one transformed, normalised image: `out[c][y][x] = table[c·256 + src[c][sy][sx]]` with `(sy, sx)` from
/// `draw` as in the module definition, or `table[c·256]` (a zero byte) where the source is outside the image.
/// `src` and `out` hold C×H×W values for `shape = [C, H, W]`; `table` is [`super::Normalization::table`].
pub fn render(src: &[u8], shape: [usize; 3], table: &[f32], draw: Draw, out: &mut [f32]) {
    let [c, h, w] = shape;
    debug_assert_eq!(src.len(), c * h * w);
    debug_assert_eq!(out.len(), c * h * w);
    let (hi, wi) = (h as isize, w as isize);
    let (x0, x1) = if draw.flip {
        (draw.dx.clamp(0, wi), (wi + draw.dx).clamp(0, wi))
    } else {
        ((-draw.dx).clamp(0, wi), (wi - draw.dx).clamp(0, wi))
    };
    let (x0, x1) = (x0 as usize, x1.max(x0) as usize);
    for ch in 0..c {
        let lut = &table[ch * 256..(ch + 1) * 256];
        let pad = lut[0];
        let plane = &src[ch * h * w..(ch + 1) * h * w];
        for (y, row) in out[ch * h * w..(ch + 1) * h * w]
            .chunks_exact_mut(w)
            .enumerate()
        {
            let sy = y as isize + draw.dy;
            if sy < 0 || sy >= hi {
                row.fill(pad);
                continue;
            }
            let srow = &plane[sy as usize * w..(sy as usize + 1) * w];
            row[..x0].fill(pad);
            row[x1..].fill(pad);
            if x0 == x1 {
                continue;
            }
            if draw.flip {
                let end = (wi - 1 + draw.dx) as usize;
                for (x, o) in row[x0..x1].iter_mut().enumerate() {
                    *o = lut[srow[end - (x0 + x)] as usize];
                }
            } else {
                let start = (x0 as isize + draw.dx) as usize;
                for (o, &v) in row[x0..x1].iter_mut().zip(&srow[start..start + (x1 - x0)]) {
                    *o = lut[v as usize];
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity_table() -> Vec<f32> {
        (0..256).map(|v| v as f32).collect()
    }

    /// The module definition, pixel by pixel.
    fn reference(src: &[u8], h: usize, w: usize, d: Draw) -> Vec<f32> {
        let mut out = Vec::new();
        for y in 0..h as isize {
            for x in 0..w as isize {
                let xs = if d.flip { w as isize - 1 - x } else { x };
                let (sy, sx) = (y + d.dy, xs + d.dx);
                let inside = (0..h as isize).contains(&sy) && (0..w as isize).contains(&sx);
                out.push(if inside {
                    src[sy as usize * w + sx as usize] as f32
                } else {
                    0.0
                });
            }
        }
        out
    }

    #[test]
    fn render_matches_definition_for_every_shift() {
        let (h, w) = (5, 7);
        let src: Vec<u8> = (1..=(h * w) as u8).collect();
        let t = identity_table();
        for dy in -6..=6 {
            for dx in -8..=8 {
                for flip in [false, true] {
                    let d = Draw { dy, dx, flip };
                    let mut out = vec![f32::NAN; h * w];
                    render(&src, [1, h, w], &t, d, &mut out);
                    assert_eq!(out, reference(&src, h, w, d), "{d:?}");
                }
            }
        }
    }

    #[test]
    fn draws_stay_in_range_and_cover_it() {
        let a = Augment {
            crop_padding: 2,
            hflip: true,
        };
        let d = a.draws(2000, 11);
        assert!(d.iter().all(|d| d.dy.abs() <= 2 && d.dx.abs() <= 2));
        for s in -2..=2 {
            assert!(d.iter().any(|d| d.dy == s) && d.iter().any(|d| d.dx == s));
        }
        let flips = d.iter().filter(|d| d.flip).count();
        assert!((850..1150).contains(&flips), "{flips}");
        assert_eq!(a.draws(10, 11), d[..10].to_vec());
        assert!(Augment::default()
            .draws(100, 3)
            .iter()
            .all(|d| *d == Draw::default()));
    }
}
