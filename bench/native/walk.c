/*
 * walk.c - native C baseline for the vtd-wasm translation benchmarks.
 *
 * Walks legacy-mode VT-d root/context/second-level tables held in a table
 * image (see bench/native/native.ts for the writer) and reports how long one
 * translation takes, so that the Wasm core can be reported as a ratio against
 * native code over the very same table images.
 *
 * Usage: walk IMAGE_FILE ITERATIONS
 *
 * Image (little-endian):
 *   u32 magic 0x56544431 ('VTD1'), u32 version 1
 *   u32 aw (39|48|57), u32 nframes, u32 nreq, u32 mode (0 walk, 1 hash lookup)
 *   u64 rta
 *   nframes x { u64 gfn; u8 data[4096] }   guest memory; absent frames read 0
 *   nreq    x { u64 iova; u16 sid; u8 dir (0 read, 1 write); u8 pad[5] }
 *
 * Output: one JSON line
 *   {"ns_per_op": D, "ops": N, "checksum": "0x..", "faults": F}
 * checksum = XOR over one pass of (ok ? gpa : 0xFA17 << 48 | fault code).
 *
 * Walk rules (vtd-digest.md 3.2, 3.3, 4, 5.1; the Wasm core's order of checks,
 * assembly/translate.ts):
 *   root P (1h) -> root reserved (Ah) -> context P (2h) -> context reserved
 *   (Bh) -> AW in SAGAW (3h) -> TT == 0 (3h) -> width (4h) -> per level, top
 *   down: not present, R = W = 0 (5h write, 6h read) -> reserved bits (Ch)
 *   -> AND R/W into the cumulative rights -> leaf? -> after the leaf: the
 *   cumulative right for the access absent (5h write, 6h read) -> output in
 *   interrupt range (Eh).
 * Rights are checked only once the whole walk is known to be well formed, so
 * a malformed entry reports Ch whatever the access. (QEMU 7.2 checks the
 * access's permission bit at every level first and so reports 5h/6h there.)
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "walk.c reads the image with native loads and needs a little-endian host"
#endif

#define MAGIC 0x56544431u
#define HEADER_SIZE 32u
#define FRAME_REC_SIZE (8u + 4096u)
#define REQ_REC_SIZE 16u
#define HASH_MUL 0x9E3779B97F4A7C15ull
#define FAULT_TAG (0xFA17ull << 48)
#define INTR_FIRST 0xFEE00000ull
#define INTR_LAST 0xFEEFFFFFull

/* Fault reasons (digest 5.2). */
enum {
  FR_ROOT_P = 0x1,
  FR_CTX_P = 0x2,
  FR_CTX_INV = 0x3,
  FR_WIDTH = 0x4,
  FR_WRITE = 0x5,
  FR_READ = 0x6,
  FR_ROOT_RSVD = 0xA,
  FR_CTX_RSVD = 0xB,
  FR_PTE_RSVD = 0xC,
  FR_INTR_ADDR = 0xE,
};

static void die(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));
static void die(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs("walk: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  exit(2);
}

static inline uint64_t ld64(const uint8_t *p) {
  uint64_t v;
  memcpy(&v, p, 8);
  return v;
}
static inline uint32_t ld32(const uint8_t *p) {
  uint32_t v;
  memcpy(&v, p, 4);
  return v;
}
static inline uint16_t ld16(const uint8_t *p) {
  uint16_t v;
  memcpy(&v, p, 2);
  return v;
}

/* ---- guest memory: open addressing, keyed by gfn, value = frame pointer ---- */

typedef struct {
  uint64_t gfn;
  const uint8_t *data; /* NULL = empty slot */
} MemSlot;

typedef struct {
  MemSlot *slots;
  uint64_t mask;
  unsigned shift; /* 64 - bits */
} Mem;

static unsigned log2_capacity(uint64_t min_cap) {
  unsigned bits = 1; /* at least 2 slots, so the shift is never 64 */
  while ((1ull << bits) < min_cap) bits++;
  return bits;
}

static void mem_init(Mem *m, uint64_t nframes) {
  unsigned bits = log2_capacity(2 * nframes);
  m->slots = calloc((size_t)1 << bits, sizeof(MemSlot));
  if (!m->slots) die("out of memory (guest memory table)");
  m->mask = (1ull << bits) - 1;
  m->shift = 64 - bits;
}

static void mem_insert(Mem *m, uint64_t gfn, const uint8_t *data) {
  uint64_t i = (gfn * HASH_MUL) >> m->shift;
  for (;;) {
    MemSlot *s = &m->slots[i];
    if (!s->data || s->gfn == gfn) { /* a repeated gfn: the last record wins */
      s->gfn = gfn;
      s->data = data;
      return;
    }
    i = (i + 1) & m->mask;
  }
}

static inline const uint8_t *mem_frame(const Mem *m, uint64_t gfn) {
  uint64_t i = (gfn * HASH_MUL) >> m->shift;
  for (;;) {
    const MemSlot *s = &m->slots[i];
    if (s->gfn == gfn && s->data) return s->data;
    if (!s->data) return NULL;
    i = (i + 1) & m->mask;
  }
}

/* Reads the naturally aligned quadword at guest physical address pa. Every
 * structure read by the walk is 8-byte aligned inside one frame; the offset is
 * masked with 0xff8 anyway so that no read can leave the frame. */
static inline uint64_t mem_rd64(const Mem *m, uint64_t pa) {
  const uint8_t *f = mem_frame(m, pa >> 12);
  return f ? ld64(f + (pa & 0xff8)) : 0;
}

/* ---- the walk ---- */

typedef struct {
  Mem mem;
  uint64_t rta;
  unsigned aw;
  unsigned sagaw;           /* bit n set = context AW value n is supported */
  uint64_t root_rsvd_lo;    /* lo 11:1 | lo 63:aw */
  uint64_t ctx_rsvd_lo;     /* lo 11:4 | lo 63:aw */
  uint64_t pt_addr_mask;    /* bits min(aw,52)-1 : 12 of a paging entry */
  uint64_t rsvd[6][2];      /* [level][PS bit] reserved mask of a paging entry */
  uint8_t leaf[6][2];       /* [level][PS bit] entry is a leaf */
} Walker;

static uint64_t bits_from(unsigned lo) { /* bits 63:lo */
  return lo >= 64 ? 0 : ~0ull << lo;
}

static void walker_init(Walker *w, unsigned aw, uint64_t rta) {
  w->aw = aw;
  w->rta = rta & ~0xfffull; /* RTADDR.RTA is bits 63:12 */
  /* Supported context AW values (CAP.SAGAW) as QEMU derives them from
   * aw-bits: 39 -> {1}, 48 -> {1, 2}; 57 extends that with 3 (digest 4.4). */
  w->sagaw = aw == 39 ? 0x2u : aw == 48 ? 0x6u : 0xEu;
  w->root_rsvd_lo = 0xffeull | bits_from(aw);
  w->ctx_rsvd_lo = 0xff0ull | bits_from(aw);
  unsigned haw = aw < 52 ? aw : 52;
  w->pt_addr_mask = ((1ull << haw) - 1) & ~0xfffull;
  /* Digest 4.3, H = aw, DT = 0, SC = 0: S = bit 11, T = bit 62, A = 51:H. */
  uint64_t a = aw < 52 ? (((1ull << 52) - 1) & bits_from(aw)) : 0;
  uint64_t base = 0x800ull | (1ull << 62) | a;
  memset(w->rsvd, 0, sizeof w->rsvd);
  memset(w->leaf, 0, sizeof w->leaf);
  w->rsvd[1][0] = w->rsvd[1][1] = base; /* SL-PTE: bit 7 ignored */
  w->leaf[1][0] = w->leaf[1][1] = 1;
  w->rsvd[2][0] = base;
  w->rsvd[2][1] = base | 0x1ff000ull; /* 2 MiB leaf: address bits 20:12 */
  w->leaf[2][1] = 1;
  w->rsvd[3][0] = base;
  w->rsvd[3][1] = base | 0x3ffff000ull; /* 1 GiB leaf: address bits 29:12 */
  w->leaf[3][1] = 1;
  for (int l = 4; l <= 5; l++) w->rsvd[l][0] = w->rsvd[l][1] = base | 0x80ull; /* PS reserved */
}

static inline uint64_t fault(unsigned code) { return FAULT_TAG | code; }

/* Returns gpa on success or FAULT_TAG | reason. A gpa is below 2^52, so the
 * two cannot be confused. */
static uint64_t walk(const Walker *w, uint64_t iova, unsigned sid, unsigned dir) {
  const Mem *m = &w->mem;
  uint64_t re = w->rta + 16u * (sid >> 8);
  uint64_t rlo = mem_rd64(m, re);
  if (!(rlo & 1)) return fault(FR_ROOT_P);
  if ((rlo & w->root_rsvd_lo) | mem_rd64(m, re + 8)) return fault(FR_ROOT_RSVD);

  uint64_t ce = (rlo & ~0xfffull) + 16u * (sid & 0xffu);
  uint64_t clo = mem_rd64(m, ce);
  if (!(clo & 1)) return fault(FR_CTX_P);
  uint64_t chi = mem_rd64(m, ce + 8);
  if ((clo & w->ctx_rsvd_lo) | (chi & 0xffffffffff000080ull)) return fault(FR_CTX_RSVD);
  unsigned agaw = (unsigned)(chi & 7);
  if (!((w->sagaw >> agaw) & 1)) return fault(FR_CTX_INV);
  if (clo & 0xc) return fault(FR_CTX_INV); /* TT must be 00 */

  unsigned width = 30 + 9 * agaw;
  if (width > w->aw) width = w->aw;
  if (iova >> width) return fault(FR_WIDTH);

  uint64_t need = dir ? 2 : 1;
  uint64_t rw = 3; /* R/W ANDed over the levels walked so far */
  uint64_t table = clo & ~0xfffull;
  for (unsigned level = agaw + 2;; level--) {
    unsigned shift = 12 + 9 * (level - 1);
    uint64_t e = mem_rd64(m, table + 8 * ((iova >> shift) & 511));
    if (!(e & 3)) return fault(dir ? FR_WRITE : FR_READ); /* not present */
    unsigned ps = (unsigned)(e >> 7) & 1;
    if (e & w->rsvd[level][ps]) return fault(FR_PTE_RSVD);
    rw &= e;
    if (w->leaf[level][ps]) {
      if (!(rw & need)) return fault(dir ? FR_WRITE : FR_READ);
      uint64_t size = 1ull << shift;
      uint64_t base = e & w->pt_addr_mask & ~(size - 1);
      if (base <= INTR_LAST && base + size - 1 >= INTR_FIRST) return fault(FR_INTR_ADDR);
      return base | (iova & (size - 1));
    }
    table = e & w->pt_addr_mask;
  }
}

/* ---- mode 1: IOTLB-hit baseline ---- */

typedef struct {
  uint64_t key;  /* (sid << 48) ^ (iova >> 12) */
  uint64_t page; /* gpa & ~0xfff of a successful translation */
  uint16_t sid;  /* with key, identifies (sid, iova page) exactly */
  uint8_t code[2]; /* fault reason for [read, write], 0 = translated */
  uint8_t used;
} TlbSlot;

typedef struct {
  TlbSlot *slots;
  uint64_t mask;
  unsigned shift;
} Tlb;

static inline uint64_t tlb_key(uint64_t iova, unsigned sid) {
  return ((uint64_t)sid << 48) ^ (iova >> 12);
}

/* The translation of a request depends only on (sid, iova page, dir), so each
 * slot holds the walk results of both directions of its page. For a successful
 * walk the page base is the same for either direction. */
static void tlb_build(Tlb *t, const Walker *w, const uint64_t *iova, const uint16_t *sid, uint64_t nreq) {
  unsigned bits = log2_capacity(2 * nreq);
  t->slots = calloc((size_t)1 << bits, sizeof(TlbSlot));
  if (!t->slots) die("out of memory (lookup table)");
  t->mask = (1ull << bits) - 1;
  t->shift = 64 - bits;
  for (uint64_t r = 0; r < nreq; r++) {
    uint64_t key = tlb_key(iova[r], sid[r]);
    uint64_t i = (key * HASH_MUL) >> t->shift;
    for (;;) {
      TlbSlot *s = &t->slots[i];
      if (s->used && s->key == key && s->sid == sid[r]) break;
      if (!s->used) {
        uint64_t pa = iova[r] & ~0xfffull;
        uint64_t rd = walk(w, pa, sid[r], 0), wr = walk(w, pa, sid[r], 1);
        s->key = key;
        s->sid = sid[r];
        s->used = 1;
        s->code[0] = (rd >> 48) == 0xFA17 ? (uint8_t)rd : 0;
        s->code[1] = (wr >> 48) == 0xFA17 ? (uint8_t)wr : 0;
        s->page = !s->code[0] ? rd : !s->code[1] ? wr : 0;
        break;
      }
      i = (i + 1) & t->mask;
    }
  }
}

static inline uint64_t tlb_lookup(const Tlb *t, uint64_t iova, unsigned sid, unsigned dir) {
  uint64_t key = tlb_key(iova, sid);
  uint64_t i = (key * HASH_MUL) >> t->shift;
  for (;;) {
    const TlbSlot *s = &t->slots[i];
    if (s->key == key && s->sid == sid && s->used) {
      unsigned code = s->code[dir];
      return code ? fault(code) : s->page | (iova & 0xfff);
    }
    if (!s->used) return fault(0); /* unreachable: every request was inserted */
    i = (i + 1) & t->mask;
  }
}

/* ---- driver ---- */

static uint8_t *read_file(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f) die("cannot open %s: %s", path, strerror(errno));
  size_t cap = 1 << 20, n = 0;
  uint8_t *buf = malloc(cap);
  if (!buf) die("out of memory (file buffer)");
  for (;;) {
    if (n == cap) {
      cap *= 2;
      uint8_t *nb = realloc(buf, cap);
      if (!nb) die("out of memory (file buffer)");
      buf = nb;
    }
    size_t got = fread(buf + n, 1, cap - n, f);
    n += got;
    if (got == 0) break;
  }
  if (ferror(f)) die("cannot read %s", path);
  fclose(f);
  *len = n;
  return buf;
}

static double now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

int main(int argc, char **argv) {
  if (argc != 3) die("usage: walk IMAGE_FILE ITERATIONS");
  char *end;
  errno = 0;
  unsigned long long iters = strtoull(argv[2], &end, 10);
  if (errno || *end || end == argv[2] || argv[2][0] == '-') die("bad ITERATIONS: %s", argv[2]);

  size_t len;
  uint8_t *buf = read_file(argv[1], &len);
  if (len < HEADER_SIZE) die("truncated image: %zu bytes, header needs %u", len, HEADER_SIZE);
  if (ld32(buf) != MAGIC) die("bad magic 0x%08" PRIx32 " (want 0x%08x)", ld32(buf), MAGIC);
  if (ld32(buf + 4) != 1) die("unsupported version %" PRIu32, ld32(buf + 4));
  uint32_t aw = ld32(buf + 8), nframes = ld32(buf + 12), nreq = ld32(buf + 16), mode = ld32(buf + 20);
  uint64_t rta = ld64(buf + 24);
  if (aw != 39 && aw != 48 && aw != 57) die("bad aw %" PRIu32 " (want 39, 48 or 57)", aw);
  if (mode > 1) die("bad mode %" PRIu32 " (want 0 or 1)", mode);
  uint64_t want = (uint64_t)HEADER_SIZE + (uint64_t)nframes * FRAME_REC_SIZE + (uint64_t)nreq * REQ_REC_SIZE;
  if ((uint64_t)len != want)
    die("image is %zu bytes but header (nframes %" PRIu32 ", nreq %" PRIu32 ") needs %" PRIu64, len, nframes, nreq,
        want);

  Walker w;
  walker_init(&w, aw, rta);
  mem_init(&w.mem, nframes);
  const uint8_t *p = buf + HEADER_SIZE;
  for (uint32_t i = 0; i < nframes; i++, p += FRAME_REC_SIZE) mem_insert(&w.mem, ld64(p), p + 8);

  uint64_t *iova = malloc(((size_t)nreq + 1) * sizeof *iova);
  uint16_t *sid = malloc(((size_t)nreq + 1) * sizeof *sid);
  uint8_t *dir = malloc((size_t)nreq + 1);
  if (!iova || !sid || !dir) die("out of memory (requests)");
  for (uint32_t i = 0; i < nreq; i++, p += REQ_REC_SIZE) {
    iova[i] = ld64(p);
    sid[i] = ld16(p + 8);
    dir[i] = p[10];
    if (dir[i] > 1) die("request %" PRIu32 ": bad dir %u (want 0 or 1)", i, dir[i]);
  }

  Tlb tlb = {0};
  if (mode == 1) tlb_build(&tlb, &w, iova, sid, nreq);

  /* Untimed warm-up pass; it also yields the checksum and fault count. */
  uint64_t checksum = 0, faults = 0;
  for (uint32_t i = 0; i < nreq; i++) {
    uint64_t r = mode == 0 ? walk(&w, iova[i], sid[i], dir[i]) : tlb_lookup(&tlb, iova[i], sid[i], dir[i]);
    checksum ^= r;
    faults += (r >> 48) == 0xFA17;
  }

  uint64_t sink = 0;
  double t0 = now_ns();
  if (mode == 0) {
    for (unsigned long long it = 0; it < iters; it++) {
      uint64_t x = 0;
      for (uint32_t i = 0; i < nreq; i++) x ^= walk(&w, iova[i], sid[i], dir[i]);
      sink += x;
    }
  } else {
    for (unsigned long long it = 0; it < iters; it++) {
      uint64_t x = 0;
      for (uint32_t i = 0; i < nreq; i++) x ^= tlb_lookup(&tlb, iova[i], sid[i], dir[i]);
      sink += x;
    }
  }
  double t1 = now_ns();

  /* Every timed pass must reproduce the warm-up checksum; this also keeps the
   * compiler from discarding the timed work. */
  if (sink != checksum * (uint64_t)iters) die("timed passes disagree with the warm-up pass");

  uint64_t ops = (uint64_t)iters * nreq;
  double ns = ops ? (t1 - t0) / (double)ops : 0.0;
  printf("{\"ns_per_op\": %.3f, \"ops\": %" PRIu64 ", \"checksum\": \"0x%" PRIx64 "\", \"faults\": %" PRIu64 "}\n", ns,
         ops, checksum, faults);

  free(tlb.slots);
  free(iova);
  free(sid);
  free(dir);
  free(w.mem.slots);
  free(buf);
  return 0;
}
