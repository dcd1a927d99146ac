"""Reading the released pickled feature dicts (`FISV_rgb_VST.npy`, `Ball_audio_AST.npy`, ...) without
ever running code.

Those files are `.npy` files holding a 0-d object array that wraps `{video_name: float array (T, D)}`;
`np.load(allow_pickle=True)` would unpickle them with the full pickle machinery, which can execute
arbitrary code. Here the `.npy` header is parsed with numpy's public format functions and the pickle
stream is read by an unpickler that admits only what such a file holds: numpy arrays and dtypes
(and the helpers numpy uses to rebuild them), dicts, lists, strings and numbers. Any other global, a
`posix.system` in a malicious file say, is refused before it can be called.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
from numpy.lib import format as npformat

from limssr.data.samples import DataError

ALLOWED_GLOBALS = {
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),
    ("_codecs", "encode"),  # how protocol-2 pickles store bytes
    ("collections", "OrderedDict"),
}


class RefusedPickle(DataError):
    """A pickle stream asked for something a feature file never holds."""


def _declared_size_matches(state, source: Path) -> None:
    """An array's pickled state (version, shape, dtype, is_fortran, data) must hold as many elements
    as its shape declares: numpy would otherwise allocate the declared shape first (a crafted file
    declaring 10^15 object elements fails with MemoryError, a smaller one exhausts memory)."""
    if not (isinstance(state, tuple) and len(state) == 5 and isinstance(state[2], np.dtype)):
        raise RefusedPickle(f"{source}: an array's pickled state is not the one numpy writes")
    _, shape, dtype, _, data = state
    if not (isinstance(shape, tuple) and all(isinstance(d, int) and d >= 0 for d in shape)):
        raise RefusedPickle(f"{source}: an array declares the shape {shape!r}")
    count = 1
    for d in shape:
        count *= d
    held = len(data) if dtype.hasobject else len(data) // max(dtype.itemsize, 1)
    if not isinstance(data, (bytes, bytearray, list)) or held != count:
        raise DataError(f"{source}: damaged or crafted pickled array: its shape {shape} declares {count} elements "
                        f"but it holds {held}")


class _RestrictedUnpickler(pickle._Unpickler):
    """The pure-Python unpickler (its opcodes can be checked one by one), admitting ALLOWED_GLOBALS
    only, and building an ndarray only from a state that holds what its shape declares."""

    dispatch = dict(pickle._Unpickler.dispatch)

    def __init__(self, fh, source: Path):
        super().__init__(fh)
        self.source = source

    def _load_build(self):
        if isinstance(self.stack[-2], np.ndarray):
            _declared_size_matches(self.stack[-1], self.source)
        pickle._Unpickler.load_build(self)

    dispatch[pickle.BUILD[0]] = _load_build

    def find_class(self, module: str, name: str):
        if (module, name) in ALLOWED_GLOBALS:
            return super().find_class(module, name)
        raise RefusedPickle(f"{self.source}: refused to load '{module}.{name}': a feature file holds only "
                            "numpy arrays, dicts, strings and numbers, so this file is not one (or is malicious)")

    def persistent_load(self, pid):
        raise RefusedPickle(f"{self.source}: refused a persistent-id reference in the pickle stream")


def read_npy_object(path: str | Path):
    """The object inside a `.npy` file written by `np.save(path, obj)`, unpickled safely.

    Plain numeric `.npy` files are returned as arrays (read without pickle)."""
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            major, minor = npformat.read_magic(fh)
            if (major, minor) == (1, 0):
                shape, _, dtype = npformat.read_array_header_1_0(fh)
            elif (major, minor) == (2, 0):
                shape, _, dtype = npformat.read_array_header_2_0(fh)
            else:
                raise DataError(f"{path}: unsupported .npy format version {major}.{minor}")
            if not dtype.hasobject:
                fh.seek(0)
                return np.load(fh, allow_pickle=False)
            try:
                obj = _RestrictedUnpickler(fh, path).load()
            except DataError:
                raise
            except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as err:
                raise DataError(f"{path}: damaged or truncated pickled array ({type(err).__name__}: {err})") from None
    except DataError:
        raise
    except OSError as err:
        raise DataError(f"{path}: cannot read ({err})") from None
    except ValueError as err:  # bad magic or header
        raise DataError(f"{path}: not a .npy file ({err})") from None
    if isinstance(obj, np.ndarray) and obj.dtype.hasobject and obj.shape == ():
        obj = obj.item()
    return obj


def read_feature_dict(path: str | Path) -> dict[str, np.ndarray]:
    """A released feature dict `{name: (T, D) array}`; names become strings, arrays float32."""
    path = Path(path)
    obj = read_npy_object(path)
    if not isinstance(obj, dict):
        raise DataError(f"{path}: expected a dict of feature arrays, found {type(obj).__name__}")
    out = {}
    for key, value in obj.items():
        if not isinstance(key, (str, int, np.integer)):
            raise DataError(f"{path}: key {key!r} is not a video name (string or integer)")
        if not isinstance(value, np.ndarray) or not np.issubdtype(value.dtype, np.number):
            raise DataError(f"{path}: value of key '{key}' is not a numeric array ({type(value).__name__})")
        out[str(key)] = value.astype(np.float32, copy=False)
    return out
