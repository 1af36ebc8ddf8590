// imgcap's C interface to its CPU kernels: int8 linear layers (libtorch's dynamically quantized
// kernels, those behind PyTorch's torch.quantization.quantize_dynamic, and a weight-only
// product for a few rows) and single-query attention.
//
// gotchprep copies this file, kern.cpp and binding.go.in into the prepared gotch module as the
// package github.com/sugarme/gotch/imgcapkern, compiled with the libtorch's flags. Tensors are
// gotch handles (torch::Tensor*). Every function that can fail returns NULL on success or an
// error message allocated with malloc (the caller frees it): C++ exceptions never cross this
// interface.
#ifndef IMGCAP_KERN_H
#define IMGCAP_KERN_H

#ifdef __cplusplus
extern "C" {
#endif

// imgcap_quant_engine names the quantized engine this libtorch offers for x86/ARM CPUs, chosen
// best first (x86, fbgemm, onednn, qnnpack); "" when it has none. Allocated with malloc.
char *imgcap_quant_engine(void);

// imgcap_qlinear_pack quantizes weight [out,in] (float, CPU) to int8 per output row
// (symmetric, scale = max|row|/127) and packs it with bias [out] (NULL: none) for the engine of
// imgcap_quant_engine. *out receives the packed layer, freed with imgcap_qlinear_free.
char *imgcap_qlinear_pack(void *weight, void *bias, void **out);

// imgcap_qlinear_forward computes x Wᵀ + b for x [..., in] (float, CPU) with the packed layer.
// Up to 16 rows (token-by-token decoding) it multiplies float32 inputs by the int8 weight
// directly (weight-only quantization, AVX2 when the CPU has it); past that it runs the engine's
// int8 GEMM, which quantizes x to uint8 over its own range (reduce_range != 0: 7 bits, which
// avoids the saturation of int16 accumulation on CPUs without VNNI). *out receives a new tensor
// handle.
char *imgcap_qlinear_forward(void *packed, void *x, int reduce_range, void **out);

// imgcap_release_storage detaches tensor from its data (set_() to an empty storage, without
// recording gradients), freeing the memory once no other tensor shares it. Every handle of the
// tensor then sees an empty tensor.
char *imgcap_release_storage(void *tensor);

// imgcap_attend computes softmax(q·kᵀ·scale + mask)·v for q [N, H, Tq, D] and k, v [N, H, Tk, D],
// mask additive and broadcastable to [N, H, Tq, Tk] (NULL: none), all float32 on the CPU, without
// materialising more than four rows of scores per thread. On AVX2 CPUs with D a multiple of 8 it
// takes any Tq (register-blocked products, vectorised exp); otherwise only Tq ≤ 16 (one pass
// over k and v per query, as in token-by-token decoding). When the inputs do not qualify
// (shapes, dtype, device, or gradients being recorded) it sets *out to NULL and returns NULL:
// the caller then takes libtorch's general path.
char *imgcap_attend(void *q, void *k, void *v, void *mask, double scale, void **out);

// imgcap_qlinear_free releases a packed layer (NULL is ignored).
void imgcap_qlinear_free(void *packed);

#ifdef __cplusplus
}
#endif

#endif
