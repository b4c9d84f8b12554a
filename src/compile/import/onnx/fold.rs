//! Constant folding of the shape ops exporters emit around the layers (pad amounts, reshape targets):
//! Constant, ConstantOfShape, Identity, Shape, Cast, Reshape, Transpose, Concat, Slice, Gather, Squeeze,
//! Unsqueeze and Expand, evaluated on f32/i64 tensors with the semantics of the ONNX operator specification. Parameters
//! that later opsets pass as inputs (Slice's starts/ends/axes, Squeeze's and Unsqueeze's axes) are read from
//! the attributes of earlier opsets when the input is absent. Malformed nodes are errors, never panics.

use onnx_protobuf::{tensor_proto::DataType, NodeProto};

use super::tensor::{from_proto, numel, Data, Tensor};
use super::{attr, attr_int, attr_ints};
use crate::budget::Budget;

type Result<T> = std::result::Result<T, String>;

/// Whether [`fold`] evaluates `op`.
pub fn foldable(op: &str) -> bool {
    matches!(
        op,
        "Constant"
            | "ConstantOfShape"
            | "Identity"
            | "Shape"
            | "Cast"
            | "Reshape"
            | "Transpose"
            | "Concat"
            | "Slice"
            | "Gather"
            | "Squeeze"
            | "Unsqueeze"
            | "Expand"
    )
}

/// The output of node `n` (a [`foldable`] op of the default domain) for constant inputs: `inputs[k]` is input
/// `k`, `None` where the node leaves an optional input out. The output (and any index table) is charged to
/// `budget` before it is allocated. Errors describe what is malformed.
pub fn fold(n: &NodeProto, inputs: &[Option<&Tensor>], budget: &Budget) -> Result<Tensor> {
    let input = |k: usize| -> Result<&Tensor> {
        inputs
            .get(k)
            .copied()
            .flatten()
            .ok_or_else(|| format!("missing input {k}"))
    };
    let copy_of = |k: usize| -> Result<&Tensor> {
        let x = input(k)?;
        charge(budget, x.len(), 8)?;
        Ok(x)
    };
    match n.op_type.as_str() {
        "Constant" => constant(n, budget),
        "ConstantOfShape" => constant_of_shape(n, input(0)?, budget),
        "Identity" => Ok(copy_of(0)?.clone()),
        "Shape" => shape(n, &input(0)?.dims),
        "Cast" => cast(n, copy_of(0)?),
        "Reshape" => {
            let x = copy_of(0)?;
            let dims = reshape_dims(
                &x.dims,
                ints(input(1)?, "shape")?,
                attr_int(n, "allowzero", 0),
            )?;
            Ok(Tensor {
                dims,
                data: x.data.clone(),
            })
        }
        "Transpose" => {
            let x = input(0)?;
            charge(budget, x.len(), 16)?;
            transpose(x, attr_ints(n, "perm"))
        }
        "Concat" => {
            let xs = (0..inputs.len().max(1))
                .map(copy_of)
                .collect::<Result<Vec<_>>>()?;
            let axis = attr(n, "axis").ok_or("Concat needs an axis")?.i;
            concat(&xs, axis)
        }
        "Slice" => {
            let x = input(0)?;
            let axes = slice_axes(n, inputs, x.dims.len())?;
            slice(x, &axes, budget)
        }
        "Gather" => gather(input(0)?, input(1)?, attr_int(n, "axis", 0), budget),
        "Squeeze" => squeeze(copy_of(0)?, optional_ints(n, inputs, 1, "axes")?.as_deref()),
        "Unsqueeze" => {
            let axes = optional_ints(n, inputs, 1, "axes")?.ok_or("Unsqueeze needs axes")?;
            unsqueeze(copy_of(0)?, &axes)
        }
        "Expand" => expand(input(0)?, input(1)?, budget),
        other => Err(format!("{other} cannot be folded")),
    }
}

/// Expand: broadcasts `x` (numpy rules, aligned at the trailing dims) against the 1-D int64 `shape`.
fn expand(x: &Tensor, shape: &Tensor, budget: &Budget) -> Result<Tensor> {
    if shape.dims.len() != 1 {
        return Err(format!("the shape must be 1-D, got dims {:?}", shape.dims));
    }
    let want = ints(shape, "the shape")?
        .iter()
        .map(|&d| usize::try_from(d).map_err(|_| format!("negative dimension {d}")))
        .collect::<Result<Vec<_>>>()?;
    let rank = want.len().max(x.dims.len());
    let pad = |d: &[usize]| -> Vec<usize> {
        let mut v = vec![1; rank - d.len()];
        v.extend_from_slice(d);
        v
    };
    let (xd, wd) = (pad(&x.dims), pad(&want));
    let mut out = Vec::with_capacity(rank);
    for (&a, &b) in xd.iter().zip(&wd) {
        out.push(match (a, b) {
            (a, b) if a == b => a,
            (1, b) => b,
            (a, 1) => a,
            _ => return Err(format!("cannot broadcast dims {:?} to {want:?}", x.dims)),
        });
    }
    let len = numel(&out)?;
    charge(budget, len, 8)?;
    let (xs, os) = (strides(&xd), strides(&out));
    let od = out.clone();
    let src = |flat: usize| -> usize {
        (0..rank)
            .map(|k| {
                let i = (flat / os[k]) % od[k];
                if xd[k] == 1 {
                    0
                } else {
                    i * xs[k]
                }
            })
            .sum()
    };
    Ok(match &x.data {
        Data::F32(v) => Tensor::f32(out, (0..len).map(|f| v[src(f)]).collect()),
        Data::I64(v) => Tensor::i64(out, (0..len).map(|f| v[src(f)]).collect()),
    })
}

/// Charges `count` elements of `width` bytes to `budget` for the node's output.
fn charge(budget: &Budget, count: usize, width: usize) -> Result<()> {
    budget
        .charge_elements("the folded output", count, width)
        .map_err(|e| e.to_string())
}

/// The total length of the per-axis index tables of a tensor of `dims`.
fn index_tables(dims: &[usize]) -> usize {
    dims.iter().fold(0usize, |a, &d| a.saturating_add(d))
}

/// The values of an int64 tensor; `what` names it in the error.
fn ints<'a>(t: &'a Tensor, what: &str) -> Result<&'a [i64]> {
    t.as_i64()
        .ok_or_else(|| format!("{what} must be int64, got {}", t.type_name()))
}

/// The int64 values of input `k` when present, else of attribute `name` when present.
fn optional_ints(
    n: &NodeProto,
    inputs: &[Option<&Tensor>],
    k: usize,
    name: &str,
) -> Result<Option<Vec<i64>>> {
    match inputs.get(k).copied().flatten() {
        Some(t) => Ok(Some(ints(t, name)?.to_vec())),
        None => Ok(attr_ints(n, name)),
    }
}

/// `axis` counted from the end when negative, checked to lie in `0..rank`.
fn normalize_axis(axis: i64, rank: usize) -> Result<usize> {
    let r = rank as i64;
    let a = if axis < 0 { axis + r } else { axis };
    if (0..r).contains(&a) {
        Ok(a as usize)
    } else {
        Err(format!("axis {axis} is out of range for rank {rank}"))
    }
}

/// Distinct normalised axes, in the given order.
pub fn distinct_axes(axes: &[i64], rank: usize) -> Result<Vec<usize>> {
    let mut out: Vec<usize> = Vec::with_capacity(axes.len());
    for &a in axes {
        let a = normalize_axis(a, rank)?;
        if out.contains(&a) {
            return Err(format!("axes {axes:?} repeat an axis"));
        }
        out.push(a);
    }
    Ok(out)
}

/// Row-major strides of `dims`.
fn strides(dims: &[usize]) -> Vec<usize> {
    let mut s = vec![1usize; dims.len()];
    for i in (0..dims.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1].saturating_mul(dims[i + 1]);
    }
    s
}

/// The tensor with dims `picks[a].len()` whose element at coordinate `c` is the input's at
/// `(picks[0][c[0]], picks[1][c[1]], …)`. Contract: one pick list per axis, every index in range.
fn select(x: &Tensor, picks: &[Vec<usize>], budget: &Budget) -> Result<Tensor> {
    let dims: Vec<usize> = picks.iter().map(Vec::len).collect();
    let n = numel(&dims)?;
    charge(budget, n, 16)?;
    let st = strides(&x.dims);
    let mut from = Vec::with_capacity(n);
    let mut c = vec![0usize; dims.len()];
    for _ in 0..n {
        from.push(
            c.iter()
                .zip(picks)
                .zip(&st)
                .map(|((&i, p), &s)| p[i] * s)
                .sum(),
        );
        for a in (0..c.len()).rev() {
            c[a] += 1;
            if c[a] < dims[a] {
                break;
            }
            c[a] = 0;
        }
    }
    Ok(x.pick(dims, &from))
}

fn constant(n: &NodeProto, budget: &Budget) -> Result<Tensor> {
    let forms = [
        "value",
        "value_float",
        "value_floats",
        "value_int",
        "value_ints",
    ];
    let given: Vec<_> = forms
        .into_iter()
        .filter_map(|f| attr(n, f).map(|a| (f, a)))
        .collect();
    let [(form, a)] = given[..] else {
        return Err(format!(
            "Constant needs exactly one of the attributes {forms:?} (sparse and string constants are not supported)"
        ));
    };
    Ok(match form {
        "value" => from_proto(
            a.t.as_ref().ok_or("Constant's value holds no tensor")?,
            budget,
        )?,
        "value_float" => Tensor::f32(vec![], vec![a.f]),
        "value_floats" => Tensor::f32(vec![a.floats.len()], a.floats.clone()),
        "value_int" => Tensor::i64(vec![], vec![a.i]),
        _ => Tensor::i64(vec![a.ints.len()], a.ints.clone()),
    })
}

fn constant_of_shape(n: &NodeProto, shape: &Tensor, budget: &Budget) -> Result<Tensor> {
    if shape.dims.len() != 1 {
        return Err(format!("the shape must be 1-D, got dims {:?}", shape.dims));
    }
    let dims = ints(shape, "the shape")?
        .iter()
        .map(|&d| usize::try_from(d).map_err(|_| format!("negative dimension {d}")))
        .collect::<Result<Vec<_>>>()?;
    let len = numel(&dims)?;
    let value = match attr(n, "value") {
        None => Tensor::f32(vec![1], vec![0.0]),
        Some(a) => from_proto(a.t.as_ref().ok_or("value holds no tensor")?, budget)?,
    };
    charge(budget, len, 8)?;
    if value.len() != 1 {
        return Err(format!(
            "value must hold one element, got dims {:?}",
            value.dims
        ));
    }
    Ok(match value.data {
        Data::F32(v) => Tensor::f32(dims, vec![v[0]; len]),
        Data::I64(v) => Tensor::i64(dims, vec![v[0]; len]),
    })
}

/// Shape's output for an input of `dims`: the dims from attribute `start` (default 0) to `end` (default the
/// rank), negative values counted from the end, both clamped to the rank.
pub fn shape(n: &NodeProto, dims: &[usize]) -> Result<Tensor> {
    let r = dims.len() as i64;
    let clamp = |v: i64| (if v < 0 { v.saturating_add(r) } else { v }).clamp(0, r) as usize;
    let start = clamp(attr_int(n, "start", 0));
    let end = clamp(attr_int(n, "end", r)).max(start);
    let v: Vec<i64> = dims[start..end].iter().map(|&d| d as i64).collect();
    Ok(Tensor::i64(vec![v.len()], v))
}

fn cast(n: &NodeProto, x: &Tensor) -> Result<Tensor> {
    let to = attr(n, "to").ok_or("Cast needs `to`")?.i;
    let data = if to == DataType::FLOAT as i32 as i64 {
        Data::F32(x.to_f32())
    } else if to == DataType::INT64 as i32 as i64 {
        match &x.data {
            Data::I64(v) => Data::I64(v.clone()),
            Data::F32(v) => Data::I64(
                v.iter()
                    .map(|&f| {
                        if f.is_finite() {
                            Ok(f.trunc() as i64)
                        } else {
                            Err(format!("cannot cast {f} to int64"))
                        }
                    })
                    .collect::<Result<_>>()?,
            ),
        }
    } else {
        return Err(format!(
            "casting to data type {to} is not supported (float and int64 are)"
        ));
    };
    Ok(Tensor {
        dims: x.dims.clone(),
        data,
    })
}

/// Reshape's output dims for an input of `dims` and the requested `shape`: 0 copies the input's dim at that
/// index (unless `allowzero` is 1), one -1 is inferred; the element count must be preserved.
pub fn reshape_dims(dims: &[usize], shape: &[i64], allowzero: i64) -> Result<Vec<usize>> {
    let total = numel(dims)?;
    let mut out = Vec::with_capacity(shape.len());
    let mut infer = None;
    for (i, &s) in shape.iter().enumerate() {
        out.push(match s {
            -1 if infer.is_some() => return Err(format!("shape {shape:?} has more than one -1")),
            -1 => {
                infer = Some(i);
                1
            }
            0 if allowzero == 0 => *dims.get(i).ok_or_else(|| {
                format!(
                    "shape {shape:?} copies dim {i} of a rank-{} input",
                    dims.len()
                )
            })?,
            s if s >= 0 => s as usize,
            s => return Err(format!("shape {shape:?} has the invalid dim {s}")),
        });
    }
    let known = numel(&out)?;
    if let Some(i) = infer {
        if known == 0 || total % known != 0 {
            return Err(format!("cannot reshape dims {dims:?} to {shape:?}"));
        }
        out[i] = total / known;
    } else if known != total {
        return Err(format!(
            "cannot reshape dims {dims:?} ({total} elements) to {shape:?}"
        ));
    }
    Ok(out)
}

/// Transpose by `perm` (default: the axes reversed), which must be a permutation of the axes.
fn transpose(x: &Tensor, perm: Option<Vec<i64>>) -> Result<Tensor> {
    let r = x.dims.len();
    let perm = perm.unwrap_or_else(|| (0..r as i64).rev().collect());
    let mut seen = vec![false; r];
    for &p in &perm {
        match usize::try_from(p).ok().filter(|&p| p < r) {
            Some(p) if !seen[p] => seen[p] = true,
            _ => return Err(format!("perm {perm:?} is not a permutation of {r} axes")),
        }
    }
    if perm.len() != r {
        return Err(format!("perm {perm:?} is not a permutation of {r} axes"));
    }
    let perm: Vec<usize> = perm.iter().map(|&p| p as usize).collect();
    let dims: Vec<usize> = perm.iter().map(|&p| x.dims[p]).collect();
    let st = strides(&x.dims);
    let n = x.len();
    let mut from = Vec::with_capacity(n);
    let mut c = vec![0usize; r];
    for _ in 0..n {
        from.push(c.iter().zip(&perm).map(|(&i, &p)| i * st[p]).sum());
        for a in (0..r).rev() {
            c[a] += 1;
            if c[a] < dims[a] {
                break;
            }
            c[a] = 0;
        }
    }
    Ok(x.pick(dims, &from))
}

fn concat(xs: &[&Tensor], axis: i64) -> Result<Tensor> {
    let first = xs[0];
    let r = first.dims.len();
    let a = normalize_axis(axis, r)?;
    for x in xs {
        let same_other_dims = x.dims.len() == r
            && x.dims
                .iter()
                .zip(&first.dims)
                .enumerate()
                .all(|(i, (p, q))| i == a || p == q);
        if !same_other_dims {
            return Err(format!(
                "cannot concatenate dims {:?} and {:?} on axis {axis}",
                first.dims, x.dims
            ));
        }
        if std::mem::discriminant(&x.data) != std::mem::discriminant(&first.data) {
            return Err(format!(
                "cannot concatenate {} and {}",
                first.type_name(),
                x.type_name()
            ));
        }
    }
    let mut dims = first.dims.clone();
    dims[a] = xs
        .iter()
        .try_fold(0usize, |s, x| s.checked_add(x.dims[a]))
        .ok_or("the concatenated axis is too long")?;
    let total = numel(&dims)?;
    let mut out = Tensor {
        dims,
        data: match first.data {
            Data::F32(_) => Data::F32(vec![]),
            Data::I64(_) => Data::I64(vec![]),
        },
    };
    if total == 0 {
        return Ok(out);
    }
    let outer: usize = first.dims[..a].iter().product();
    let inner: usize = first.dims[a + 1..].iter().product();
    for o in 0..outer {
        for x in xs {
            let chunk = x.dims[a] * inner;
            match (&mut out.data, &x.data) {
                (Data::F32(d), Data::F32(s)) => d.extend_from_slice(&s[o * chunk..(o + 1) * chunk]),
                (Data::I64(d), Data::I64(s)) => d.extend_from_slice(&s[o * chunk..(o + 1) * chunk]),
                _ => return Err("mixed element types".into()),
            }
        }
    }
    Ok(out)
}

/// One axis of a Slice: the raw start, end and step, and the normalised axis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SliceAxis {
    pub axis: usize,
    pub start: i64,
    pub end: i64,
    pub step: i64,
}

impl SliceAxis {
    /// The indices taken from an axis of length `dim`: negative start and end count from the end, then both
    /// are clamped (to `[0, dim]` for a positive step, to `[0, dim-1]` and `[-1, dim-1]` for a negative one).
    pub fn indices(&self, dim: usize) -> Vec<usize> {
        let d = dim as i64;
        let wrap = |v: i64| if v < 0 { v.saturating_add(d) } else { v };
        let (start, end) = (wrap(self.start), wrap(self.end));
        if self.step > 0 {
            let (s, e) = (start.clamp(0, d), end.clamp(0, d));
            (s..e)
                .step_by(self.step as usize)
                .map(|i| i as usize)
                .collect()
        } else if d == 0 {
            vec![]
        } else {
            let (s, e) = (start.clamp(0, d - 1), end.clamp(-1, d - 1));
            let step = self.step.unsigned_abs() as usize;
            ((e + 1)..=s)
                .rev()
                .step_by(step)
                .map(|i| i as usize)
                .collect()
        }
    }
}

/// The per-axis parameters of Slice node `n` on a tensor of rank `rank`: starts, ends, axes (default
/// `0..len`) and steps (default 1) from inputs 1 to 4, or from the attributes when inputs 1 and 2 are absent.
/// Axes must be distinct and in range, steps non-zero and every list as long as starts.
pub fn slice_axes(
    n: &NodeProto,
    inputs: &[Option<&Tensor>],
    rank: usize,
) -> Result<Vec<SliceAxis>> {
    let given = |k: usize| inputs.get(k).copied().flatten();
    let list = |k: usize, name: &str| -> Result<Option<Vec<i64>>> {
        match given(k) {
            Some(t) if t.dims.len() == 1 => Ok(Some(ints(t, name)?.to_vec())),
            Some(t) => Err(format!("{name} must be 1-D, got dims {:?}", t.dims)),
            None => Ok(None),
        }
    };
    let (starts, ends, axes, steps) = if given(1).is_some() || given(2).is_some() {
        (
            list(1, "starts")?.ok_or("missing starts")?,
            list(2, "ends")?.ok_or("missing ends")?,
            list(3, "axes")?,
            list(4, "steps")?,
        )
    } else {
        (
            attr_ints(n, "starts").ok_or("missing starts")?,
            attr_ints(n, "ends").ok_or("missing ends")?,
            attr_ints(n, "axes"),
            None,
        )
    };
    let k = starts.len();
    let axes = axes.unwrap_or_else(|| (0..k as i64).collect());
    let steps = steps.unwrap_or_else(|| vec![1; k]);
    if ends.len() != k || axes.len() != k || steps.len() != k {
        return Err(format!(
            "starts {starts:?}, ends {ends:?}, axes {axes:?} and steps {steps:?} differ in length"
        ));
    }
    if steps.contains(&0) {
        return Err(format!("steps {steps:?} contain 0"));
    }
    let axes = distinct_axes(&axes, rank)?;
    Ok((0..k)
        .map(|i| SliceAxis {
            axis: axes[i],
            start: starts[i],
            end: ends[i],
            step: steps[i],
        })
        .collect())
}

fn slice(x: &Tensor, axes: &[SliceAxis], budget: &Budget) -> Result<Tensor> {
    charge(budget, index_tables(&x.dims), 8)?;
    let mut picks: Vec<Vec<usize>> = x.dims.iter().map(|&d| (0..d).collect()).collect();
    for a in axes {
        picks[a.axis] = a.indices(x.dims[a.axis]);
    }
    select(x, &picks, budget)
}

fn gather(x: &Tensor, indices: &Tensor, axis: i64, budget: &Budget) -> Result<Tensor> {
    let a = normalize_axis(axis, x.dims.len())?;
    let dim = x.dims[a];
    let idx = ints(indices, "indices")?
        .iter()
        .map(|&i| {
            let j = if i < 0 { i + dim as i64 } else { i };
            usize::try_from(j)
                .ok()
                .filter(|&j| j < dim)
                .ok_or_else(|| format!("index {i} is out of range for dim {dim}"))
        })
        .collect::<Result<Vec<_>>>()?;
    charge(budget, index_tables(&x.dims), 8)?;
    let mut picks: Vec<Vec<usize>> = x.dims.iter().map(|&d| (0..d).collect()).collect();
    picks[a] = idx;
    let mut out = select(x, &picks, budget)?;
    out.dims = [&x.dims[..a], &indices.dims[..], &x.dims[a + 1..]].concat();
    Ok(out)
}

/// Squeeze the given axes (each of dim 1), or every dim of 1 when `axes` is `None`.
fn squeeze(x: &Tensor, axes: Option<&[i64]>) -> Result<Tensor> {
    let drop = match axes {
        Some(axes) => {
            let axes = distinct_axes(axes, x.dims.len())?;
            if let Some(&a) = axes.iter().find(|&&a| x.dims[a] != 1) {
                return Err(format!("cannot squeeze axis {a} of dims {:?}", x.dims));
            }
            axes
        }
        None => (0..x.dims.len()).filter(|&a| x.dims[a] == 1).collect(),
    };
    Ok(Tensor {
        dims: (0..x.dims.len())
            .filter(|a| !drop.contains(a))
            .map(|a| x.dims[a])
            .collect(),
        data: x.data.clone(),
    })
}

/// Insert dims of 1 at `axes`, which index the output (negative ones from its end).
fn unsqueeze(x: &Tensor, axes: &[i64]) -> Result<Tensor> {
    let r = x.dims.len() + axes.len();
    let axes = distinct_axes(axes, r)?;
    let mut rest = x.dims.iter();
    let dims = (0..r)
        .map(|a| {
            if axes.contains(&a) {
                1
            } else {
                *rest.next().expect("rank is the input's plus the axes")
            }
        })
        .collect();
    Ok(Tensor {
        dims,
        data: x.data.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use onnx_protobuf::{AttributeProto, TensorProto};

    fn node(op: &str, attrs: Vec<AttributeProto>) -> NodeProto {
        let mut n = NodeProto::new();
        n.op_type = op.into();
        n.attribute = attrs;
        n
    }

    fn int(name: &str, v: i64) -> AttributeProto {
        let mut a = AttributeProto::new();
        a.name = name.into();
        a.i = v;
        a
    }

    fn ints_attr(name: &str, v: &[i64]) -> AttributeProto {
        let mut a = AttributeProto::new();
        a.name = name.into();
        a.ints = v.to_vec();
        a
    }

    fn tensor_attr(name: &str, t: &Tensor) -> AttributeProto {
        let mut p = TensorProto::new();
        p.dims = t.dims.iter().map(|&d| d as i64).collect();
        match &t.data {
            Data::F32(v) => {
                p.data_type = DataType::FLOAT as i32;
                p.float_data = v.clone();
            }
            Data::I64(v) => {
                p.data_type = DataType::INT64 as i32;
                p.int64_data = v.clone();
            }
        }
        let mut a = AttributeProto::new();
        a.name = name.into();
        a.t = protobuf::MessageField::some(p);
        a
    }

    fn i(dims: &[usize], v: &[i64]) -> Tensor {
        Tensor::i64(dims.to_vec(), v.to_vec())
    }

    fn f(dims: &[usize], v: &[f32]) -> Tensor {
        Tensor::f32(dims.to_vec(), v.to_vec())
    }

    fn run(op: &str, attrs: Vec<AttributeProto>, inputs: &[Option<&Tensor>]) -> Result<Tensor> {
        fold(&node(op, attrs), inputs, &Budget::default())
    }

    fn ok(op: &str, attrs: Vec<AttributeProto>, inputs: &[&Tensor]) -> Tensor {
        let inputs: Vec<_> = inputs.iter().map(|&t| Some(t)).collect();
        run(op, attrs, &inputs).unwrap()
    }

    fn fails(op: &str, attrs: Vec<AttributeProto>, inputs: &[&Tensor], needle: &str) {
        let inputs: Vec<_> = inputs.iter().map(|&t| Some(t)).collect();
        let e = run(op, attrs, &inputs).unwrap_err();
        assert!(e.contains(needle), "{op}: error '{e}' lacks '{needle}'");
    }

    #[test]
    fn constant_forms() {
        let t = i(&[2], &[3, -4]);
        assert_eq!(ok("Constant", vec![tensor_attr("value", &t)], &[]), t);
        assert_eq!(
            ok("Constant", vec![ints_attr("value_ints", &[1, 2])], &[]),
            i(&[2], &[1, 2])
        );
        assert_eq!(ok("Constant", vec![int("value_int", 5)], &[]), i(&[], &[5]));
        fails("Constant", vec![], &[], "exactly one");
        fails(
            "Constant",
            vec![int("value_int", 5), ints_attr("value_ints", &[1])],
            &[],
            "exactly one",
        );
    }

    #[test]
    fn constant_of_shape() {
        let zeros = ok("ConstantOfShape", vec![], &[&i(&[2], &[2, 1])]);
        assert_eq!(zeros, f(&[2, 1], &[0.0, 0.0]));
        let sevens = ok(
            "ConstantOfShape",
            vec![tensor_attr("value", &i(&[1], &[7]))],
            &[&i(&[1], &[3])],
        );
        assert_eq!(sevens, i(&[3], &[7, 7, 7]));
        assert_eq!(
            ok("ConstantOfShape", vec![], &[&i(&[0], &[])]),
            f(&[], &[0.0])
        );
        fails("ConstantOfShape", vec![], &[&i(&[1], &[-1])], "negative");
        fails("ConstantOfShape", vec![], &[&i(&[1, 1], &[2])], "1-D");
        fails("ConstantOfShape", vec![], &[&f(&[1], &[2.0])], "int64");
        fails(
            "ConstantOfShape",
            vec![tensor_attr("value", &i(&[2], &[1, 2]))],
            &[&i(&[1], &[3])],
            "one element",
        );
        fails(
            "ConstantOfShape",
            vec![],
            &[&i(&[3], &[1 << 20, 1 << 20, 1 << 20])],
            "too large",
        );
    }

    #[test]
    fn shape_and_identity() {
        let x = f(&[1, 2, 3], &[0.0; 6]);
        assert_eq!(ok("Shape", vec![], &[&x]), i(&[3], &[1, 2, 3]));
        assert_eq!(
            ok("Shape", vec![int("start", 1), int("end", -1)], &[&x]),
            i(&[1], &[2])
        );
        assert_eq!(ok("Shape", vec![int("start", 9)], &[&x]), i(&[0], &[]));
        assert_eq!(ok("Identity", vec![], &[&x]), x);
    }

    #[test]
    fn cast() {
        let x = f(&[3], &[1.7, -1.7, 2.0]);
        let to = |t: DataType| vec![int("to", t as i32 as i64)];
        assert_eq!(ok("Cast", to(DataType::INT64), &[&x]), i(&[3], &[1, -1, 2]));
        assert_eq!(
            ok("Cast", to(DataType::FLOAT), &[&i(&[2], &[3, -4])]),
            f(&[2], &[3.0, -4.0])
        );
        fails(
            "Cast",
            to(DataType::INT64),
            &[&f(&[1], &[f32::NAN])],
            "cannot cast",
        );
        fails("Cast", to(DataType::INT32), &[&x], "not supported");
        fails("Cast", vec![], &[&x], "`to`");
    }

    #[test]
    fn reshape() {
        let x = i(&[8], &[0, 1, 2, 3, 4, 5, 6, 7]);
        let y = ok("Reshape", vec![], &[&x, &i(&[2], &[-1, 2])]);
        assert_eq!(y.dims, [4, 2]);
        assert_eq!(y.data, x.data);
        let z = ok("Reshape", vec![], &[&y, &i(&[2], &[0, -1])]);
        assert_eq!(z.dims, [4, 2]);
        fails(
            "Reshape",
            vec![],
            &[&x, &i(&[2], &[-1, -1])],
            "more than one -1",
        );
        fails(
            "Reshape",
            vec![],
            &[&x, &i(&[2], &[3, -1])],
            "cannot reshape",
        );
        fails("Reshape", vec![], &[&x, &i(&[1], &[7])], "cannot reshape");
        fails("Reshape", vec![], &[&x, &i(&[1], &[-2])], "invalid dim");
        fails("Reshape", vec![], &[&x, &i(&[2], &[2, 0])], "copies dim 1");
        fails("Reshape", vec![], &[&x, &f(&[1], &[8.0])], "int64");
        fails("Reshape", vec![], &[&x], "missing input 1");
    }

    #[test]
    fn transpose() {
        let x = i(&[2, 3], &[1, 2, 3, 4, 5, 6]);
        assert_eq!(
            ok("Transpose", vec![], &[&x]),
            i(&[3, 2], &[1, 4, 2, 5, 3, 6])
        );
        let y = i(&[2, 1, 3], &[1, 2, 3, 4, 5, 6]);
        let t = ok("Transpose", vec![ints_attr("perm", &[2, 0, 1])], &[&y]);
        assert_eq!(t, i(&[3, 2, 1], &[1, 4, 2, 5, 3, 6]));
        for perm in [&[0, 0][..], &[0], &[0, 2], &[-1, 0]] {
            fails(
                "Transpose",
                vec![ints_attr("perm", perm)],
                &[&x],
                "permutation",
            );
        }
    }

    #[test]
    fn concat() {
        let axis = |a: i64| vec![int("axis", a)];
        let a = i(&[6], &[0, 0, 0, 0, 8, 8]);
        let b = i(&[2], &[0, 0]);
        assert_eq!(
            ok("Concat", axis(0), &[&a, &b]),
            i(&[8], &[0, 0, 0, 0, 8, 8, 0, 0])
        );
        let p = f(&[2, 1], &[1.0, 2.0]);
        let q = f(&[2, 2], &[3.0, 4.0, 5.0, 6.0]);
        assert_eq!(
            ok("Concat", axis(-1), &[&p, &q]),
            f(&[2, 3], &[1.0, 3.0, 4.0, 2.0, 5.0, 6.0])
        );
        fails("Concat", axis(0), &[&p, &q], "cannot concatenate dims");
        fails(
            "Concat",
            axis(0),
            &[&a, &f(&[1], &[1.0])],
            "cannot concatenate int64 and float",
        );
        fails("Concat", axis(1), &[&a, &b], "out of range");
        fails("Concat", vec![], &[&a, &b], "axis");
        fails("Concat", axis(0), &[], "missing input 0");
    }

    fn slice(
        x: &Tensor,
        starts: &[i64],
        ends: &[i64],
        axes: &[i64],
        steps: &[i64],
    ) -> Result<Tensor> {
        let (s, e, a, k) = (
            i(&[starts.len()], starts),
            i(&[ends.len()], ends),
            i(&[axes.len()], axes),
            i(&[steps.len()], steps),
        );
        run(
            "Slice",
            vec![],
            &[Some(x), Some(&s), Some(&e), Some(&a), Some(&k)],
        )
    }

    #[test]
    fn slice_semantics() {
        let x = i(&[4, 2], &[0, 1, 2, 3, 4, 5, 6, 7]);
        let rev = slice(&x, &[-1], &[-i64::MAX], &[0], &[-1]).unwrap();
        assert_eq!(rev, i(&[4, 2], &[6, 7, 4, 5, 2, 3, 0, 1]));
        let even = slice(&x, &[0], &[i64::MAX], &[0], &[2]).unwrap();
        assert_eq!(even, i(&[2, 2], &[0, 1, 4, 5]));
        let tail = slice(&x, &[-3, 1], &[3, 2], &[0, -1], &[1, 1]).unwrap();
        assert_eq!(tail, i(&[2, 1], &[3, 5]));
        let down = slice(&x, &[i64::MAX], &[0], &[0], &[-2]).unwrap();
        assert_eq!(down, i(&[2, 2], &[6, 7, 2, 3]));
        assert_eq!(slice(&x, &[3], &[1], &[0], &[1]).unwrap().dims, [0, 2]);
        let f = f(&[5], &[0.0, 1.0, 2.0, 3.0, 4.0]);
        let two = run(
            "Slice",
            vec![],
            &[Some(&f), Some(&i(&[1], &[1])), Some(&i(&[1], &[3]))],
        );
        assert_eq!(two.unwrap(), Tensor::f32(vec![2], vec![1.0, 2.0]));
        let attrs = vec![
            ints_attr("starts", &[1]),
            ints_attr("ends", &[100]),
            ints_attr("axes", &[0]),
        ];
        assert_eq!(run("Slice", attrs, &[Some(&f)]).unwrap().dims, [4]);
    }

    #[test]
    fn slice_rejects_malformed() {
        let x = i(&[4, 2], &[0; 8]);
        let e = |r: Result<Tensor>| r.unwrap_err();
        assert!(e(slice(&x, &[0], &[4], &[0], &[0])).contains("contain 0"));
        assert!(e(slice(&x, &[0, 0], &[4], &[0], &[1])).contains("differ in length"));
        assert!(e(slice(&x, &[0, 0], &[4, 4], &[0, -2], &[1, 1])).contains("repeat"));
        assert!(e(slice(&x, &[0], &[4], &[2], &[1])).contains("out of range"));
        let fs = Tensor::f32(vec![1], vec![0.0]);
        let r = run("Slice", vec![], &[Some(&x), Some(&fs), Some(&fs)]);
        assert!(e(r).contains("int64"));
        assert!(e(run("Slice", vec![], &[Some(&x)])).contains("missing starts"));
    }

    #[test]
    fn gather() {
        let x = i(&[3, 2], &[1, 2, 3, 4, 5, 6]);
        assert_eq!(
            ok("Gather", vec![], &[&x, &i(&[2], &[2, -3])]),
            i(&[2, 2], &[5, 6, 1, 2])
        );
        assert_eq!(ok("Gather", vec![], &[&x, &i(&[], &[1])]), i(&[2], &[3, 4]));
        assert_eq!(
            ok("Gather", vec![int("axis", 1)], &[&x, &i(&[1, 1], &[1])]),
            i(&[3, 1, 1], &[2, 4, 6])
        );
        fails("Gather", vec![], &[&x, &i(&[1], &[3])], "out of range");
        fails("Gather", vec![], &[&x, &i(&[1], &[-4])], "out of range");
        fails(
            "Gather",
            vec![int("axis", 2)],
            &[&x, &i(&[1], &[0])],
            "out of range",
        );
        fails("Gather", vec![], &[&x, &f(&[1], &[0.0])], "int64");
    }

    #[test]
    fn squeeze_and_unsqueeze() {
        let x = i(&[1, 3, 1], &[1, 2, 3]);
        assert_eq!(ok("Squeeze", vec![], &[&x]).dims, [3]);
        assert_eq!(ok("Squeeze", vec![], &[&x, &i(&[1], &[-1])]).dims, [1, 3]);
        assert_eq!(
            ok("Squeeze", vec![ints_attr("axes", &[0])], &[&x]).dims,
            [3, 1]
        );
        fails("Squeeze", vec![], &[&x, &i(&[1], &[1])], "cannot squeeze");
        let y = i(&[3], &[1, 2, 3]);
        let u = ok("Unsqueeze", vec![], &[&y, &i(&[2], &[0, -1])]);
        assert_eq!(u, i(&[1, 3, 1], &[1, 2, 3]));
        assert_eq!(
            ok("Unsqueeze", vec![ints_attr("axes", &[1])], &[&y]).dims,
            [3, 1]
        );
        fails("Unsqueeze", vec![], &[&y, &i(&[2], &[0, 0])], "repeat");
        fails("Unsqueeze", vec![], &[&y, &i(&[1], &[2])], "out of range");
        fails("Unsqueeze", vec![], &[&y], "needs axes");
    }

    /// The pads subgraph PyTorch's exporter emits for `F.pad(x, (0, 0, 0, 0, 8, 8))`.
    #[test]
    fn pytorch_pads_subgraph() {
        let given = i(&[6], &[0, 0, 0, 0, 8, 8]);
        let zeros = ok(
            "ConstantOfShape",
            vec![tensor_attr("value", &i(&[1], &[0]))],
            &[&i(&[1], &[2])],
        );
        let all = ok("Concat", vec![int("axis", 0)], &[&given, &zeros]);
        let pairs = ok("Reshape", vec![], &[&all, &i(&[2], &[-1, 2])]);
        let rev = slice(&pairs, &[-1], &[-i64::MAX], &[0], &[-1]).unwrap();
        let t = ok("Transpose", vec![ints_attr("perm", &[1, 0])], &[&rev]);
        let flat = ok("Reshape", vec![], &[&t, &i(&[1], &[-1])]);
        let pads = ok(
            "Cast",
            vec![int("to", DataType::INT64 as i32 as i64)],
            &[&flat],
        );
        assert_eq!(pads, i(&[8], &[0, 8, 0, 0, 0, 8, 0, 0]));
    }
}
