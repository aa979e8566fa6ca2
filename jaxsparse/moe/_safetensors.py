"""Raw safetensors reading and writing with numpy (bf16 and fp8 included, through ml_dtypes).

`safetensors.numpy` cannot load BF16, the dtype most MoE checkpoints ship in, so the format (8-byte little-endian
header length, a JSON header, then the raw tensor bytes) is read and written here directly. Reading memory-maps the
file read-only, so the source checkpoint can never be modified and large files are not copied into memory.
"""

import json
import os
import pathlib
import struct

import ml_dtypes
import numpy as np

__all__ = ["read_safetensors", "write_safetensors"]

_DTYPES = {
    "F64": np.dtype(np.float64),
    "F32": np.dtype(np.float32),
    "F16": np.dtype(np.float16),
    "BF16": np.dtype(ml_dtypes.bfloat16),
    "F8_E4M3": np.dtype(ml_dtypes.float8_e4m3fn),
    "F8_E5M2": np.dtype(ml_dtypes.float8_e5m2),
    "I64": np.dtype(np.int64),
    "I32": np.dtype(np.int32),
    "I16": np.dtype(np.int16),
    "I8": np.dtype(np.int8),
    "U64": np.dtype(np.uint64),
    "U32": np.dtype(np.uint32),
    "U16": np.dtype(np.uint16),
    "U8": np.dtype(np.uint8),
    "BOOL": np.dtype(np.bool_),
}
_CODES = {dtype: code for code, dtype in _DTYPES.items()}
_MAX_HEADER = 100 * 1024 * 1024


def read_safetensors(path: str | os.PathLike) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Read one safetensors file: (tensors by name, the `__metadata__` dict). Arrays are read-only memory maps."""
    path = pathlib.Path(path)
    size = path.stat().st_size
    with open(path, "rb") as fh:
        head = fh.read(8)
        if len(head) != 8:
            raise ValueError(f"{path}: not a safetensors file (shorter than 8 bytes)")
        (n_header,) = struct.unpack("<Q", head)
        if n_header > min(_MAX_HEADER, size - 8):
            raise ValueError(f"{path}: not a safetensors file (header length {n_header} exceeds the file)")
        try:
            header = json.loads(fh.read(n_header))
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise ValueError(f"{path}: corrupt safetensors header: {err}") from None
    metadata = dict(header.pop("__metadata__", None) or {})
    start = 8 + n_header
    n_data = size - start
    data = np.memmap(path, dtype=np.uint8, mode="r", offset=start, shape=(n_data,)) if n_data else np.zeros(0, np.uint8)
    tensors = {}
    for name, info in header.items():
        code = info.get("dtype")
        if code not in _DTYPES:
            raise ValueError(f"{path}: tensor {name!r} has unsupported dtype {code!r}")
        dtype = _DTYPES[code]
        shape = tuple(int(s) for s in info["shape"])
        begin, end = (int(o) for o in info["data_offsets"])
        expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        if end - begin != expected or end > n_data or begin < 0:
            raise ValueError(f"{path}: tensor {name!r} offsets {begin}..{end} do not match shape {shape} {code}")
        tensors[name] = data[begin:end].view(dtype).reshape(shape)
    return tensors, metadata


def write_safetensors(path: str | os.PathLike, tensors: dict[str, np.ndarray], metadata: dict[str, str] | None = None):
    """Write tensors (numpy, any dtype in the format) to `path` in safetensors layout."""
    header: dict = {}
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    arrays = []
    offset = 0
    arrays_by_name = {}
    for name, value in tensors.items():
        array = np.ascontiguousarray(np.asarray(value))
        if array.dtype not in _CODES:
            raise TypeError(f"tensor {name!r} has dtype {array.dtype}, which safetensors cannot store")
        arrays_by_name[name] = array
    # Largest itemsize first, then by name (as the reference writer): every tensor stays aligned to its dtype.
    for name in sorted(arrays_by_name, key=lambda n: (-arrays_by_name[n].dtype.itemsize, n)):
        array = arrays_by_name[name]
        header[name] = {
            "dtype": _CODES[array.dtype],
            "shape": list(array.shape),
            "data_offsets": [offset, offset + array.nbytes],
        }
        offset += array.nbytes
        arrays.append(array)
    blob = json.dumps(header, separators=(",", ":")).encode()
    blob += b" " * (-len(blob) % 8)  # the reference writer aligns the data section to 8 bytes
    with open(path, "wb") as fh:
        fh.write(struct.pack("<Q", len(blob)))
        fh.write(blob)
        for array in arrays:
            fh.write(array.reshape(-1).view(np.uint8).data if array.size else b"")
