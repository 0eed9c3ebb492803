/* Decoder log-likelihood on Intel AMX, in float32-grade precision (bf16x3).
 *
 * An MLP decoder (Linear, ReLU, ..., Linear) maps codes to Bernoulli logits; the evaluation needs
 * only -log p(x|z) = sum_j softplus(s_j l_j), s_j = 1 - 2 x_j, per code. AMX multiplies bfloat16
 * tiles into float32 accumulators at ~8x the float32 AVX-512 rate, but one bfloat16 keeps 8 bits.
 * Each float32 operand is therefore split as v = hi + lo (two bfloat16, round to nearest), and
 *     a.w ~= a_hi.w_hi + a_lo.w_hi + a_hi.w_lo
 * is one bfloat16 GEMM over a K three times as long: A = [a_hi | a_lo | a_hi], B = [w_hi; w_hi; w_lo].
 * Every product is exact in float32 and only a_lo.w_lo (2^-16 relative) is dropped.
 *
 * The last layer never writes its logits: a 32 x 32 block of logits goes from the tiles straight
 * into softplus sums, while the tiles already compute the next block (the epilogue of block j is
 * spread over the k steps of block j + 1, so the AMX unit and the vector units overlap).
 * softplus(u) = max(u, 0) + log(1 + exp(-|u|)): the max parts are summed, the (1 + exp(-|u|))
 * factors (each in (1, 2]) multiplied per lane, and a lane's product is taken to a double log once
 * per 60 blocks (at most 2^120, far from float32 overflow), so a row costs 16 logs, not D.
 *
 * Layouts. Activations: rows of 3 * kpad bfloat16 ([hi | lo | hi]), kpad = K rounded up to 32,
 * rows padded to a multiple of 32; padding is zero. Weights (nn.Linear's n x k): B' of
 * 3 * kpad x npad (npad = n rounded up to 32) in 16 x 32 "VNNI" tiles, tile (nb, kb) at
 * ((nb * nkb + kb) * 16 + row) * 32 + col with row = (k % 32) / 2, col = (n % 16) * 2 + k % 2.
 *
 * Built at first use by vaepriors.kernels.amx (cc -O3 with AMX and AVX-512 flags).
 */
#include <immintrin.h>
#include <math.h>
#include <stdint.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#define ARCH_REQ_XCOMP_PERM 0x1023
#define XFEATURE_XTILEDATA 18
#define FOLD_BLOCKS 60

/* Linux hands AMX tile state to a process only on request; 0 on success. */
int vp_amx_init(void) {
  return syscall(SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) == 0 ? 0 : -1;
}

typedef struct {
  uint8_t palette_id, start_row, reserved[14];
  uint16_t colsb[16];
  uint8_t rows[16];
} tile_config;

/* Tiles 0-3: a 32 x 32 float32 block of C; 4, 5: two 16 x 32 bf16 A tiles; 6, 7: two B tiles. */
static void configure_tiles(void) {
  tile_config c __attribute__((aligned(64)));
  memset(&c, 0, sizeof c);
  c.palette_id = 1;
  for (int t = 0; t < 8; t++) {
    c.rows[t] = 16;
    c.colsb[t] = 64;
  }
  _tile_loadconfig(&c);
}

static inline uint16_t bf16_round(float x) { /* round to nearest even; x is finite */
  uint32_t b;
  memcpy(&b, &x, 4);
  b += 0x7FFFu + ((b >> 16) & 1u);
  return (uint16_t)(b >> 16);
}

static inline float bf16_float(uint16_t h) {
  uint32_t b = (uint32_t)h << 16;
  float x;
  memcpy(&x, &b, 4);
  return x;
}

/* x (m x k, row stride ldx) -> a (mpad x 3 kpad) as [hi | lo | hi], zero padded. */
void vp_split_rows(const float *x, int m, int k, int ldx, uint16_t *a, int mpad, int kpad) {
  int k3 = 3 * kpad;
  for (int r = 0; r < mpad; r++) {
    uint16_t *row = a + (size_t)r * k3;
    if (r >= m) {
      memset(row, 0, (size_t)k3 * 2);
      continue;
    }
    const float *xr = x + (size_t)r * ldx;
    for (int j = 0; j < kpad; j++) {
      float v = j < k ? xr[j] : 0.f;
      uint16_t hi = bf16_round(v), lo = bf16_round(v - bf16_float(hi));
      row[j] = hi;
      row[kpad + j] = lo;
      row[2 * kpad + j] = hi;
    }
  }
}

/* w (n x k, nn.Linear weight) -> bp, B' = [hi; hi; lo] in VNNI tiles (see the header). */
void vp_pack_weight(const float *w, int n, int k, uint16_t *bp, int npad, int kpad) {
  int k3 = 3 * kpad, nkb = k3 / 32;
  for (int col = 0; col < npad; col++)
    for (int kk = 0; kk < k3; kk++) {
      int part = kk / kpad, kr = kk % kpad;
      float v = (col < n && kr < k) ? w[(size_t)col * k + kr] : 0.f;
      uint16_t hi = bf16_round(v);
      uint16_t val = part < 2 ? hi : bf16_round(v - bf16_float(hi));
      size_t tile = (size_t)(col / 16) * nkb + kk / 32;
      bp[(tile * 16 + (kk % 32) / 2) * 32 + (col % 16) * 2 + kk % 2] = val;
    }
}

/* One k step of a 32 x 32 block: tiles 0-3 += A rows (a0: 16, a1: 16) x B columns (b0: 16, b1: 16). */
static inline void tile_step(const uint16_t *a0, const uint16_t *a1, int k3, const uint16_t *b0, const uint16_t *b1,
                             int kb) {
  _tile_loadd(4, a0 + kb * 32, k3 * 2);
  _tile_loadd(5, a1 + kb * 32, k3 * 2);
  _tile_loadd(6, b0 + kb * 512, 64);
  _tile_loadd(7, b1 + kb * 512, 64);
  _tile_dpbf16ps(0, 4, 6);
  _tile_dpbf16ps(1, 4, 7);
  _tile_dpbf16ps(2, 5, 6);
  _tile_dpbf16ps(3, 5, 7);
}

/* C block (m0, n0) of 32 x 32 into tiles 0-3; A rows m0.., B columns n0.. */
static inline void tile_block(const uint16_t *a, int m0, int k3, const uint16_t *bp, int n0, int nkb) {
  const uint16_t *a0 = a + (size_t)m0 * k3, *a1 = a0 + (size_t)16 * k3;
  const uint16_t *b0 = bp + (size_t)(n0 / 16) * nkb * 512, *b1 = b0 + (size_t)nkb * 512;
  _tile_zero(0);
  _tile_zero(1);
  _tile_zero(2);
  _tile_zero(3);
  for (int kb = 0; kb < nkb; kb++) tile_step(a0, a1, k3, b0, b1, kb);
}

static inline void store_block(float *c) {
  _tile_stored(0, c, 128);
  _tile_stored(1, c + 16, 128);
  _tile_stored(2, c + 16 * 32, 128);
  _tile_stored(3, c + 16 * 32 + 16, 128);
}

static inline __mmask16 column_mask(int n, int col) {
  return (n - col) >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (n - col)) - 1);
}

/* Hidden layer: relu(a.w + b), written as the next layer's [hi | lo | hi] rows (out_kpad >= n;
 * columns n.. of out stay as they are, zero from the caller). Rows m0 + r < m only. */
static void linear_relu_split(const uint16_t *a, int m, int kpad, const uint16_t *bp, int n, int npad,
                              const float *bias, uint16_t *out, int out_kpad) {
  int k3 = 3 * kpad, nkb = k3 / 32, o3 = 3 * out_kpad;
  float c[32 * 32] __attribute__((aligned(64)));
  for (int m0 = 0; m0 < m; m0 += 32) {
    int rows = m - m0 < 32 ? m - m0 : 32;
    for (int n0 = 0; n0 < npad; n0 += 32) {
      tile_block(a, m0, k3, bp, n0, nkb);
      store_block(c);
      for (int v = 0; v < 2; v++) {
        int col = n0 + 16 * v;
        if (col >= n) break;
        __mmask16 mask = column_mask(n, col);
        __m512 b = _mm512_maskz_loadu_ps(mask, bias + col);
        for (int r = 0; r < rows; r++) {
          /* max(0, v): vmaxps returns its second operand when either is NaN, so NaN stays NaN */
          __m512 u = _mm512_max_ps(_mm512_setzero_ps(), _mm512_add_ps(_mm512_load_ps(c + r * 32 + 16 * v), b));
          __m256i hi = (__m256i)_mm512_cvtneps_pbh(u);
          __m512 hif = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(hi), 16));
          __m256i lo = (__m256i)_mm512_cvtneps_pbh(_mm512_sub_ps(u, hif));
          uint16_t *row = out + (size_t)(m0 + r) * o3 + col;
          _mm256_mask_storeu_epi16(row, mask, hi);
          _mm256_mask_storeu_epi16(row + out_kpad, mask, lo);
          _mm256_mask_storeu_epi16(row + 2 * out_kpad, mask, hi);
        }
      }
    }
  }
}

/* exp(x) for x <= 0, clamped at -80 (1 + e^-80 is 1 in float32) so no result is denormal. */
static inline __m512 exp_nonpositive(__m512 x) {
  x = _mm512_max_ps(_mm512_set1_ps(-80.0f), x); /* NaN stays NaN (second operand) */
  __m512 k = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                  _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fmadd_ps(k, _mm512_set1_ps(-0.693359375f), x); /* ln 2 in two parts */
  r = _mm512_fmadd_ps(k, _mm512_set1_ps(2.12194440e-4f), r);
  __m512 p = _mm512_set1_ps(1.f / 5040); /* Taylor to r^7 on |r| <= ln2 / 2: error < 1e-8 */
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.f / 720));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.f / 120));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.f / 24));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.f / 6));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.f));
  return _mm512_scalef_ps(p, k);
}

typedef struct {
  __m512 prod[32], relu[32]; /* per row and lane: product of (1 + exp(-|u|)), sum of max(u, 0) */
  double logs[32];
  const float *signs[32];
  int rows, blocks;
} softplus_sums;

static inline void softplus_item(softplus_sums *acc, const float *c, int n0, int item, int n, const float *bias) {
  int r = item >> 1, col = n0 + 16 * (item & 1);
  if (r >= acc->rows || col >= n) return;
  __mmask16 mask = column_mask(n, col);
  __m512 b = _mm512_maskz_loadu_ps(mask, bias + col);
  __m512 s = _mm512_maskz_loadu_ps(mask, acc->signs[r] + col);
  __m512 u = _mm512_mul_ps(_mm512_add_ps(_mm512_load_ps(c + r * 32 + 16 * (item & 1)), b), s);
  acc->relu[r] = _mm512_mask_add_ps(acc->relu[r], mask, acc->relu[r], _mm512_max_ps(_mm512_setzero_ps(), u));
  __m512 e = exp_nonpositive(_mm512_sub_ps(_mm512_setzero_ps(), _mm512_abs_ps(u)));
  acc->prod[r] = _mm512_mask_mul_ps(acc->prod[r], mask, acc->prod[r], _mm512_add_ps(e, _mm512_set1_ps(1.f)));
}

static void fold_products(softplus_sums *acc) {
  for (int r = 0; r < 32; r++) {
    float t[16];
    _mm512_storeu_ps(t, acc->prod[r]);
    for (int l = 0; l < 16; l++) acc->logs[r] += log((double)t[l]);
    acc->prod[r] = _mm512_set1_ps(1.f);
  }
}

/* Last layer: nll[r] = sum_j softplus(s_j (a_r.w_j + b_j)), s = signs row (first + r) mod period. */
static void bernoulli_nll(const uint16_t *a, int m, int kpad, const uint16_t *bp, int n, int npad,
                          const float *bias, const float *signs, long first, int period, double *nll) {
  int k3 = 3 * kpad, nkb = k3 / 32;
  float cbuf[2][32 * 32] __attribute__((aligned(64)));
  softplus_sums acc;
  for (int m0 = 0; m0 < m; m0 += 32) {
    acc.rows = m - m0 < 32 ? m - m0 : 32;
    acc.blocks = 0;
    for (int r = 0; r < 32; r++) {
      acc.prod[r] = _mm512_set1_ps(1.f);
      acc.relu[r] = _mm512_setzero_ps();
      acc.logs[r] = 0;
      acc.signs[r] = signs + (size_t)((first + m0 + (r < acc.rows ? r : 0)) % period) * n;
    }
    int pending = -1, cur = 0; /* pending: n0 of the block waiting in cbuf[cur ^ 1] */
    for (int n0 = 0; n0 < npad; n0 += 32) {
      const float *prev = cbuf[cur ^ 1];
      const uint16_t *a0 = a + (size_t)m0 * k3, *a1 = a0 + (size_t)16 * k3;
      const uint16_t *b0 = bp + (size_t)(n0 / 16) * nkb * 512, *b1 = b0 + (size_t)nkb * 512;
      int item = 0;
      _tile_zero(0);
      _tile_zero(1);
      _tile_zero(2);
      _tile_zero(3);
      for (int kb = 0; kb < nkb; kb++) {
        tile_step(a0, a1, k3, b0, b1, kb);
        if (pending >= 0)
          for (int stop = (kb + 1) * 64 / nkb; item < stop; item++) softplus_item(&acc, prev, pending, item, n, bias);
      }
      if (pending >= 0) {
        for (; item < 64; item++) softplus_item(&acc, prev, pending, item, n, bias);
        if (++acc.blocks == FOLD_BLOCKS) {
          acc.blocks = 0;
          fold_products(&acc);
        }
      }
      store_block(cbuf[cur]);
      pending = n0;
      cur ^= 1;
    }
    for (int item = 0; item < 64; item++) softplus_item(&acc, cbuf[cur ^ 1], pending, item, n, bias);
    fold_products(&acc);
    for (int r = 0; r < acc.rows; r++) {
      float q[16];
      _mm512_storeu_ps(q, acc.relu[r]);
      double total = acc.logs[r];
      for (int l = 0; l < 16; l++) total += (double)q[l];
      nll[m0 + r] = total;
    }
  }
}

/* The whole decoder for m codes z (row stride ldz), VP_BLOCK codes at a time so that every
 * intermediate stays in cache: layers 0..nlayers-1 with dims[2i] outputs and dims[2i+1] inputs,
 * ReLU after all but the last. scratch[i] holds layer i's input rows for one block
 * (VP_BLOCK x 3 kpad_i bfloat16; padding columns zero from the caller and never written; rows past
 * a short block keep earlier values, harmless as every output row depends on its own row only).
 * A NaN anywhere in a code's computation makes its result NaN, as in torch. Code r is scored against the signs
 * row (first + r) mod period. */
#define VP_BLOCK 512
int vp_block_rows(void) { return VP_BLOCK; }

void vp_decoder_nll(const float *z, int m, int ldz, int nlayers, const int *dims, const uint16_t *const *packs,
                    const float *const *biases, uint16_t *const *scratch, const float *signs, long first,
                    int period, double *nll) {
  configure_tiles();
  for (int b0 = 0; b0 < m; b0 += VP_BLOCK) {
    int mb = m - b0 < VP_BLOCK ? m - b0 : VP_BLOCK;
    vp_split_rows(z + (size_t)b0 * ldz, mb, dims[1], ldz, scratch[0], (mb + 31) / 32 * 32, (dims[1] + 31) / 32 * 32);
    for (int i = 0; i < nlayers; i++) {
      int n = dims[2 * i], k = dims[2 * i + 1];
      int npad = (n + 31) / 32 * 32, kpad = (k + 31) / 32 * 32;
      if (i + 1 < nlayers)
        linear_relu_split(scratch[i], mb, kpad, packs[i], n, npad, biases[i], scratch[i + 1], npad);
      else
        bernoulli_nll(scratch[i], mb, kpad, packs[i], n, npad, biases[i], signs, first + b0, period, nll + b0);
    }
  }
  _tile_release();
}
