"""Explicit 16-lane float32 vectors for Numba kernels (LLVM ``<16 x float>``).

Why: a register-blocked convolution keeps a tile of outputs (e.g. 6 pixels x 64 channels) in
vector registers while it runs over the whole reduction. Written as scalar loops, LLVM keeps
such accumulators in memory (it cannot prove the output row does not alias the weights), and
the loop is bound by loads and stores at about a third of the FMA rate. With a vector type
whose values are SSA registers, the tile stays in registers and each step is one broadcast,
a few loads and one FMA per accumulator: measured 170-190 GFLOP/s on one AVX-512 core, about
1.6x OpenBLAS's SGEMM on the same core.

On a CPU without AVX-512 LLVM splits each vector into two 8-lane halves (correct, slower:
see :data:`AVX512` and the rule in :mod:`._cpu_direct`).

The operations are plain LLVM: ``llvm.fma`` rounds once, so a kernel gives the same bits on
every run, whatever the thread count or the vector width of the machine.
"""

from llvmlite import binding as llvm_binding
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic, models, register_model

LANES = 16


def _targets_avx512():
    """Whether Numba compiles for a CPU with AVX-512F (a vector is then one register): the host's
    features, unless NUMBA_CPU_NAME / NUMBA_CPU_FEATURES chose another target (e.g. 'generic'
    for portable caches, where 16-lane vectors would be split and spilled)."""
    from numba.core import config

    if config.CPU_NAME not in (None, "host"):
        return "+avx512f" in (config.CPU_FEATURES or "").split(",")
    return "+avx512f" in llvm_binding.get_host_cpu_features().flatten().split(",")


AVX512 = _targets_avx512()


class F32x16(types.Type):
    """The Numba type of a ``<16 x float>`` value."""

    def __init__(self):
        super().__init__(name="f32x16")


f32x16 = F32x16()
_VEC = ir.VectorType(ir.FloatType(), LANES)
_I32 = ir.IntType(32)


@register_model(F32x16)
class _F32x16Model(models.PrimitiveModel):
    def __init__(self, dmm, fe_type):
        super().__init__(dmm, fe_type, _VEC)


def _is_f32_array(a):
    return isinstance(a, types.Array) and a.dtype == types.float32


def _element_ptr(context, builder, aty, arr, idx):
    data = context.make_array(aty)(context, builder, arr).data
    return builder.gep(data, [idx])


@intrinsic
def vload(typingctx, arr, idx):
    """``arr.flat[idx:idx + 16]`` as a vector (float32 C-contiguous array; no bounds check)."""
    if not _is_f32_array(arr):
        return None

    def codegen(context, builder, sig, args):
        ptr = _element_ptr(context, builder, sig.args[0], args[0], args[1])
        return builder.load(builder.bitcast(ptr, _VEC.as_pointer()), align=4)

    return f32x16(arr, types.intp), codegen


@intrinsic
def vstore(typingctx, arr, idx, v):
    """``arr.flat[idx:idx + 16] = v``."""
    if not (_is_f32_array(arr) and v == f32x16):
        return None

    def codegen(context, builder, sig, args):
        ptr = _element_ptr(context, builder, sig.args[0], args[0], args[1])
        builder.store(args[2], builder.bitcast(ptr, _VEC.as_pointer()), align=4)
        return context.get_dummy_value()

    return types.none(arr, types.intp, f32x16), codegen


@intrinsic
def vbroadcast(typingctx, arr, idx):
    """A vector whose 16 lanes are ``arr.flat[idx]`` (one load-and-broadcast instruction)."""
    if not _is_f32_array(arr):
        return None

    def codegen(context, builder, sig, args):
        value = builder.load(_element_ptr(context, builder, sig.args[0], args[0], args[1]), align=4)
        one = builder.insert_element(ir.Constant(_VEC, ir.Undefined), value, ir.Constant(_I32, 0))
        mask = ir.Constant(ir.VectorType(_I32, LANES), [0] * LANES)
        return builder.shuffle_vector(one, ir.Constant(_VEC, ir.Undefined), mask)

    return f32x16(arr, types.intp), codegen


@intrinsic
def vzero(typingctx):
    """The zero vector."""

    def codegen(context, builder, sig, args):
        return ir.Constant(_VEC, [0.0] * LANES)

    return f32x16(), codegen


@intrinsic
def vfma(typingctx, a, b, c):
    """``a * b + c`` lane by lane, rounded once (``llvm.fma``)."""
    if not (a == f32x16 and b == f32x16 and c == f32x16):
        return None

    def codegen(context, builder, sig, args):
        fnty = ir.FunctionType(_VEC, [_VEC, _VEC, _VEC])
        return builder.call(cgutils.get_or_insert_function(builder.module, fnty, "llvm.fma.v16f32"), args)

    return f32x16(f32x16, f32x16, f32x16), codegen


@intrinsic
def vadd(typingctx, a, b):
    """``a + b`` lane by lane."""
    if not (a == f32x16 and b == f32x16):
        return None

    def codegen(context, builder, sig, args):
        return builder.fadd(*args)

    return f32x16(f32x16, f32x16), codegen
