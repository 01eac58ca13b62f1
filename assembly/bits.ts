// Bit-field helpers. Every architected field is declared once as a
// (shift, length) pair and read or written only through these helpers, so a
// field's position appears in exactly one place (the project's style rule).

/** Mask of `len` bits starting at bit 0 (len 0..64). */
// @ts-ignore: decorator
@inline export function lowMask64(len: u32): u64 {
  return len >= 64 ? <u64>-1 : ((<u64>1 << len) - 1);
}

/** Mask of bits [lo, hi) (hi exclusive), empty when hi <= lo. */
// @ts-ignore: decorator
@inline export function rangeMask64(lo: u32, hi: u32): u64 {
  return hi <= lo ? 0 : (lowMask64(hi - lo) << lo);
}

/** Mask of the field `len` bits wide at `shift` (the bits it covers in its word). */
// @ts-ignore: decorator
@inline export function fieldMask64(shift: u32, len: u32): u64 {
  return lowMask64(len) << shift;
}

/** Field value `len` bits wide at `shift` of `word`. */
// @ts-ignore: decorator
@inline export function extract64(word: u64, shift: u32, len: u32): u64 {
  return (word >> shift) & lowMask64(len);
}

/** `word` with the field at (shift, len) replaced by `value`. */
// @ts-ignore: decorator
@inline export function deposit64(word: u64, shift: u32, len: u32, value: u64): u64 {
  const m = lowMask64(len) << shift;
  return (word & ~m) | ((value << shift) & m);
}

/** True when bit `bit` of `word` is set. */
// @ts-ignore: decorator
@inline export function bit64(word: u64, bit: u32): bool {
  return ((word >> bit) & 1) != 0;
}

// @ts-ignore: decorator
@inline export function bitMask64(bit: u32): u64 {
  return <u64>1 << bit;
}
