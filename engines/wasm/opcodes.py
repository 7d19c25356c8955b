"""Wasm opcodes: what immediates follow each, for the proposals wasmtime 50 enables by default.

Supported: MVP, multi-value, sign extension, saturating float-to-int, bulk
memory, reference types, SIMD (0xFD, with relaxed SIMD), multi-memory and
tail calls. Opcodes of other proposals map to the proposal's name, so that
a module using them is refused with "not supported: <proposal>".
"""

from __future__ import annotations

# Immediate shapes.
NONE = 0
U32 = 1  # one LEB128 index or count
U32X2 = 2  # two LEB128 indices (call_indirect, table.copy, memory.init, ...)
BLOCKTYPE = 3  # 0x40, a value type byte, or an s33 type index
BR_TABLE = 4  # vec(u32) then u32
MEMARG = 5  # align flags (bit 6: a memory index follows), [memidx], offset
I32 = 6  # signed LEB128
I64 = 7
F32 = 8  # 4 bytes
F64 = 9  # 8 bytes
SELECT_T = 10  # vec(valtype)
REFTYPE = 11  # one byte
BYTES16 = 12  # v128.const, i8x16.shuffle
LANE = 13  # one lane-index byte
MEMARG_LANE = 14  # memarg then a lane-index byte

# Opcodes the rewriter needs by name.
UNREACHABLE, NOP, BLOCK, LOOP, IF, ELSE, END = 0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x0B
BR, BR_IF, BR_TABLE_OP, RETURN = 0x0C, 0x0D, 0x0E, 0x0F
CALL, CALL_INDIRECT, RETURN_CALL, RETURN_CALL_INDIRECT = 0x10, 0x11, 0x12, 0x13
DROP = 0x1A
LOCAL_GET, LOCAL_SET, LOCAL_TEE, GLOBAL_GET, GLOBAL_SET = 0x20, 0x21, 0x22, 0x23, 0x24
I32_LOAD, I64_LOAD, I32_LOAD8_U = 0x28, 0x29, 0x2D
I32_STORE, I64_STORE, I32_STORE8 = 0x36, 0x37, 0x3A
I32_CONST, I64_CONST, F32_CONST, F64_CONST = 0x41, 0x42, 0x43, 0x44
I32_EQ, I32_LT_U, I32_GE_U, I64_GT_U = 0x46, 0x49, 0x4F, 0x56
I32_SHL, SELECT = 0x74, 0x1B
I32_ADD, I32_SUB, I64_ADD = 0x6A, 0x6B, 0x7C
I64_EXTEND_I32_S, I64_EXTEND_I32_U = 0xAC, 0xAD
I32_REINTERPRET_F32, I64_REINTERPRET_F64 = 0xBC, 0xBD
REF_NULL = 0xD0
# Value types, and the block type of a block that takes and gives nothing.
T_I32, T_I64, T_F32, T_F64, T_FUNCREF, T_EXTERNREF = 0x7F, 0x7E, 0x7D, 0x7C, 0x70, 0x6F
EMPTY = 0x40
REF_FUNC = 0xD2
PREFIX_MISC, PREFIX_SIMD = 0xFC, 0xFD

SINGLE: dict[int, int] = {
    0x00: NONE,
    0x01: NONE,
    0x02: BLOCKTYPE,
    0x03: BLOCKTYPE,
    0x04: BLOCKTYPE,
    0x05: NONE,
    0x0B: NONE,
    0x0C: U32,
    0x0D: U32,
    0x0E: BR_TABLE,
    0x0F: NONE,
    0x10: U32,
    0x11: U32X2,
    0x12: U32,
    0x13: U32X2,
    0x1A: NONE,
    0x1B: NONE,
    0x1C: SELECT_T,
    0x20: U32,
    0x21: U32,
    0x22: U32,
    0x23: U32,
    0x24: U32,
    0x25: U32,
    0x26: U32,
    0x3F: U32,
    0x40: U32,
    0x41: I32,
    0x42: I64,
    0x43: F32,
    0x44: F64,
    0xD0: REFTYPE,
    0xD1: NONE,
    0xD2: U32,
}
SINGLE.update({op: MEMARG for op in range(0x28, 0x3F)})  # loads and stores
SINGLE.update({op: NONE for op in range(0x45, 0xC5)})  # numeric, sign extension

# 0xFC prefix: saturating truncation (0-7), bulk memory and tables (8-17).
MISC: dict[int, int] = {op: NONE for op in range(8)}
MISC.update(
    {8: U32X2, 9: U32, 10: U32X2, 11: U32, 12: U32X2, 13: U32, 14: U32X2, 15: U32, 16: U32, 17: U32}
)

# 0xFD prefix: SIMD and relaxed SIMD.
SIMD: dict[int, int] = {op: NONE for op in range(0x114)}
SIMD.update({op: MEMARG for op in range(0x00, 0x0C)})
SIMD.update({0x0C: BYTES16, 0x0D: BYTES16})
SIMD.update({op: LANE for op in range(0x15, 0x23)})
SIMD.update({op: MEMARG_LANE for op in range(0x54, 0x5C)})
SIMD.update({0x5C: MEMARG, 0x5D: MEMARG})

# What belongs to proposals wasmtime does not enable by default, or we do not support.
UNSUPPORTED: dict[int, str] = {
    0x06: "exception handling",
    0x07: "exception handling",
    0x08: "exception handling",
    0x09: "exception handling",
    0x0A: "exception handling",
    0x18: "exception handling",
    0x19: "exception handling",
    0x1F: "exception handling",
    0x14: "function references",
    0x15: "function references",
    0xD3: "GC",
    0xD4: "function references",
    0xD5: "function references",
    0xD6: "function references",
    0xFB: "GC",
    0xFE: "threads",
}

# Loads and stores: (bytes accessed, is a store).
ACCESS: dict[int, tuple[int, bool]] = {
    0x28: (4, False),
    0x29: (8, False),
    0x2A: (4, False),
    0x2B: (8, False),
    0x2C: (1, False),
    0x2D: (1, False),
    0x2E: (2, False),
    0x2F: (2, False),
    0x30: (1, False),
    0x31: (1, False),
    0x32: (2, False),
    0x33: (2, False),
    0x34: (4, False),
    0x35: (4, False),
    0x36: (4, True),
    0x37: (8, True),
    0x38: (4, True),
    0x39: (8, True),
    0x3A: (1, True),
    0x3B: (2, True),
    0x3C: (1, True),
    0x3D: (2, True),
    0x3E: (4, True),
}

VALTYPES = {
    0x7F: "i32",
    0x7E: "i64",
    0x7D: "f32",
    0x7C: "f64",
    0x7B: "v128",
    0x70: "funcref",
    0x6F: "externref",
}
