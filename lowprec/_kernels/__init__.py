"""Numba kernels. They take plain ints, floats and arrays, never lowprec objects, and run
as plain Python under NUMBA_DISABLE_JIT=1. Importing this package compiles nothing."""
