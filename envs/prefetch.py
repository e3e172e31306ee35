"""A cache prefetch hint for numba kernels (LLVM's ``llvm.prefetch``).

The native execution vector env steps its books in turn; with many books, a book's arrays
have left the caches by the time its turn comes, and the first touch of every live order and
price level waits on memory. Hinting the next env's arrays while the current one steps
overlaps those waits with work. A hint never changes a result.
"""

from __future__ import annotations

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic


@intrinsic
def prefetch_nb(typingctx, arr, row, col):
    """Hint that ``arr[row, col]`` (a 2-D array) will be read soon: fetch its cache line into
    every level of the cache."""
    if not (isinstance(arr, types.Array) and arr.ndim == 2):
        return None
    if not (isinstance(row, types.Integer) and isinstance(col, types.Integer)):
        return None
    sig = types.void(arr, row, col)

    def codegen(context, builder, signature, args):
        arr_type = signature.args[0]
        array = context.make_array(arr_type)(context, builder, args[0])
        index = [
            context.cast(builder, v, t, types.intp)
            for v, t in zip(args[1:], signature.args[1:], strict=True)
        ]
        ptr = cgutils.get_item_pointer(context, builder, arr_type, array, index, wraparound=False)
        byte_ptr = ir.IntType(8).as_pointer()
        fn_type = ir.FunctionType(ir.VoidType(), [byte_ptr] + [ir.IntType(32)] * 3)
        fn = cgutils.get_or_insert_function(builder.module, fn_type, "llvm.prefetch.p0")
        i32 = ir.IntType(32)
        # read (0), keep in all cache levels (locality 3), data cache (1)
        builder.call(fn, [builder.bitcast(ptr, byte_ptr), i32(0), i32(3), i32(1)])
        return context.get_dummy_value()

    return sig, codegen
