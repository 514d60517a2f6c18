/* quench — packing of quantized codes (../shared/docs/compressed-tensors-format.md §5.4, §5.5).
 *
 * pack-quantized: signed b-bit codes are offset to unsigned (q + 2^(b-1)) and packed low bits
 * first into int32 words, padding bits zero. Two layouts:
 *   dense  (CT >= 0.17, compressors/pack_quantized/helpers.py): element j starts at bit j*b of the
 *          line, bit k lives in word k/32 at bit k%32 (values straddle words); ceil(n*b/32) words.
 *   legacy (CT <= 0.16): floor(32/b) elements per word at bit offset b*(j % per_word);
 *          ceil(n / per_word) words.
 * For b in {1, 2, 4, 8} they are the same bytes. weight_packed packs along dim 1 (rows of the
 * weight), weight_zero_point along dim 0 (columns of the [out, groups] zero-point matrix).
 * nvfp4-pack-quantized: two E2M1 codes per byte, element 2k in the low nibble.
 */
#include <stdlib.h>
#include <string.h>

#include "quant/quant_internal.h"

#define QNP_PAR_MIN 65536

static qn_status check_bits(int bits, qn_pack_layout layout, qn_error *err) {
    if (bits < 1 || bits > 8)
        return qn_error_set(err, QN_ERR_INVALID_ARG, "pack: num_bits %d outside 1..8", bits);
    if (layout != QN_PACK_DENSE && layout != QN_PACK_LEGACY)
        return qn_error_set(err, QN_ERR_INVALID_ARG, "pack: invalid layout %d", (int)layout);
    return QN_OK;
}

int64_t qn_pack_int32_words(int64_t n, int bits, qn_pack_layout layout) {
    if (n < 0 || bits < 1 || bits > 8) return -1;
    if (layout == QN_PACK_LEGACY) {
        int64_t per = 32 / bits;
        return (n + per - 1) / per;
    }
    return (n * bits + 31) / 32;
}

/* Packs n codes src[i * stride] into words dst[w * dstride] (zeroed here). Returns the index of
 * the first out-of-range code, or -1. */
static int64_t pack_line(const int8_t *src, int64_t stride, int64_t n, int bits,
                         qn_pack_layout layout, uint32_t *dst, int64_t dstride) {
    const int off = 1 << (bits - 1);
    const int64_t nw = qn_pack_int32_words(n, bits, layout);
    const int per = 32 / bits;
    for (int64_t w = 0; w < nw; w++) dst[w * dstride] = 0;
    for (int64_t j = 0; j < n; j++) {
        int v = src[j * stride] + off;
        if (v < 0 || v >= (1 << bits)) return j;
        uint32_t u = (uint32_t)v;
        if (layout == QN_PACK_LEGACY) {
            dst[(j / per) * dstride] |= u << (bits * (int)(j % per));
        } else {
            int64_t bit = j * bits, w = bit >> 5;
            int o = (int)(bit & 31);
            dst[w * dstride] |= u << o;
            if (o + bits > 32) dst[(w + 1) * dstride] |= u >> (32 - o);
        }
    }
    return -1;
}

static void unpack_line(const uint32_t *src, int64_t sstride, int64_t n, int bits,
                        qn_pack_layout layout, int8_t *dst, int64_t stride) {
    const int off = 1 << (bits - 1);
    const uint32_t mask = (1u << bits) - 1u;
    const int per = 32 / bits;
    for (int64_t j = 0; j < n; j++) {
        uint32_t v;
        if (layout == QN_PACK_LEGACY) {
            v = src[(j / per) * sstride] >> (bits * (int)(j % per));
        } else {
            int64_t bit = j * bits, w = bit >> 5;
            int o = (int)(bit & 31);
            v = src[w * sstride] >> o;
            if (o + bits > 32) v |= src[(w + 1) * sstride] << (32 - o);
        }
        dst[j * stride] = (int8_t)((int)(v & mask) - off);
    }
}

static qn_status check_shape(const void *a, const void *b, int64_t rows, int64_t cols, qn_error *err) {
    if (rows < 0 || cols < 0) return qn_error_set(err, QN_ERR_INVALID_ARG, "pack: negative shape");
    if ((rows && cols) && (!a || !b)) return qn_error_set(err, QN_ERR_INVALID_ARG, "pack: NULL buffer");
    return QN_OK;
}

qn_status qn_pack_int32_rows(const int8_t *q, int64_t rows, int64_t cols, int bits,
                             qn_pack_layout layout, int32_t *out, qn_error *err) {
    qn_status st = check_bits(bits, layout, err);
    if (st || (st = check_shape(q, out, rows, cols, err))) return st;
    const int64_t nw = qn_pack_int32_words(cols, bits, layout);
    int64_t bad_r = -1, bad_c = -1;
#pragma omp parallel for schedule(static) if (rows * cols > QNP_PAR_MIN)
    for (int64_t r = 0; r < rows; r++) {
        int64_t b = pack_line(q + r * cols, 1, cols, bits, layout, (uint32_t *)out + r * nw, 1);
        if (b >= 0) {
#pragma omp critical(qn_pack_bad)
            if (bad_r < 0 || r < bad_r) { bad_r = r; bad_c = b; }
        }
    }
    if (bad_r >= 0)
        return qn_error_set(err, QN_ERR_INVALID_ARG, "pack: code %d at [%lld, %lld] outside int%d",
                            (int)q[bad_r * cols + bad_c], (long long)bad_r, (long long)bad_c, bits);
    return QN_OK;
}

qn_status qn_unpack_int32_rows(const int32_t *packed, int64_t rows, int64_t cols, int bits,
                               qn_pack_layout layout, int8_t *q, qn_error *err) {
    qn_status st = check_bits(bits, layout, err);
    if (st || (st = check_shape(packed, q, rows, cols, err))) return st;
    const int64_t nw = qn_pack_int32_words(cols, bits, layout);
#pragma omp parallel for schedule(static) if (rows * cols > QNP_PAR_MIN)
    for (int64_t r = 0; r < rows; r++)
        unpack_line((const uint32_t *)packed + r * nw, 1, cols, bits, layout, q + r * cols, 1);
    return QN_OK;
}

qn_status qn_pack_int32_cols(const int8_t *q, int64_t rows, int64_t cols, int bits,
                             qn_pack_layout layout, int32_t *out, qn_error *err) {
    qn_status st = check_bits(bits, layout, err);
    if (st || (st = check_shape(q, out, rows, cols, err))) return st;
    int64_t bad_r = -1, bad_c = -1;
#pragma omp parallel for schedule(static) if (rows * cols > QNP_PAR_MIN)
    for (int64_t c = 0; c < cols; c++) {
        int64_t b = pack_line(q + c, cols, rows, bits, layout, (uint32_t *)out + c, cols);
        if (b >= 0) {
#pragma omp critical(qn_pack_bad)
            if (bad_c < 0 || c < bad_c) { bad_c = c; bad_r = b; }
        }
    }
    if (bad_c >= 0)
        return qn_error_set(err, QN_ERR_INVALID_ARG, "pack: code %d at [%lld, %lld] outside int%d",
                            (int)q[bad_r * cols + bad_c], (long long)bad_r, (long long)bad_c, bits);
    return QN_OK;
}

qn_status qn_unpack_int32_cols(const int32_t *packed, int64_t rows, int64_t cols, int bits,
                               qn_pack_layout layout, int8_t *q, qn_error *err) {
    qn_status st = check_bits(bits, layout, err);
    if (st || (st = check_shape(packed, q, rows, cols, err))) return st;
#pragma omp parallel for schedule(static) if (rows * cols > QNP_PAR_MIN)
    for (int64_t c = 0; c < cols; c++)
        unpack_line((const uint32_t *)packed + c, cols, rows, bits, layout, q + c, cols);
    return QN_OK;
}

qn_status qn_pack_fp4(const uint8_t *codes, int64_t rows, int64_t cols, uint8_t *out, qn_error *err) {
    qn_status st = check_shape(codes, out, rows, cols, err);
    if (st) return st;
    if (cols % 2)
        return qn_error_set(err, QN_ERR_INVALID_ARG,
                            "pack: nvfp4 packing needs an even number of columns (got %lld)",
                            (long long)cols);
    const int64_t n = rows * cols;
    for (int64_t i = 0; i < n; i++)
        if (codes[i] > 15)
            return qn_error_set(err, QN_ERR_INVALID_ARG, "pack: E2M1 code %d at [%lld, %lld] > 15",
                                codes[i], (long long)(i / cols), (long long)(i % cols));
#pragma omp parallel for schedule(static) if (n > QNP_PAR_MIN)
    for (int64_t i = 0; i < n / 2; i++)
        out[i] = (uint8_t)(codes[2 * i] | (codes[2 * i + 1] << 4));
    return QN_OK;
}

qn_status qn_unpack_fp4(const uint8_t *packed, int64_t rows, int64_t cols, uint8_t *codes,
                        qn_error *err) {
    qn_status st = check_shape(packed, codes, rows, cols, err);
    if (st) return st;
    if (cols % 2)
        return qn_error_set(err, QN_ERR_INVALID_ARG,
                            "pack: nvfp4 unpacking needs an even number of columns (got %lld)",
                            (long long)cols);
    const int64_t n = rows * cols;
#pragma omp parallel for schedule(static) if (n > QNP_PAR_MIN)
    for (int64_t i = 0; i < n / 2; i++) {
        codes[2 * i] = packed[i] & 0x0Fu;
        codes[2 * i + 1] = (uint8_t)(packed[i] >> 4);
    }
    return QN_OK;
}
