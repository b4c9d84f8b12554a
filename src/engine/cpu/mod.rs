//! The CPU engine: ndarray + rayon + matrixmultiply, hand-written forward and backward.
