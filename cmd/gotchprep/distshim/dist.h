// imgcap's C interface to libtorch's c10d (TCPStore, ProcessGroupGloo, ProcessGroupNCCL).
//
// gotchprep copies this file, dist.cpp and binding.go.in into the prepared gotch module as the
// package github.com/sugarme/gotch/imgcapdist, compiled with the libtorch's flags. Tensors are
// gotch handles (torch::Tensor*). Every function that can fail returns NULL on success or an
// error message allocated with malloc (the caller frees it): C++ exceptions never cross this
// interface.
#ifndef IMGCAP_DIST_H
#define IMGCAP_DIST_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// Bits of imgcap_dist_features.
#define IMGCAP_DIST_HAVE_GLOO 1
#define IMGCAP_DIST_HAVE_NCCL 2

// imgcap_dist_features reports which backends this build of the shim has.
int imgcap_dist_features(void);

// imgcap_dist_new joins a process group of world processes as rank: rank 0 serves a TCPStore on
// master_port, every rank connects to it at master_addr, and the backend ("gloo" or "nccl")
// connects the ranks to each other. For Gloo, gloo_iface (a network interface name) or else
// gloo_host (an address of this machine that the other ranks can reach) picks the local address;
// both empty: libtorch's default (the hostname's address). For NCCL, device is the CUDA device
// index of this rank. timeout_ms bounds the rendezvous and every collective.
char *imgcap_dist_new(const char *backend, const char *master_addr, int master_port, int rank, int world,
                      int64_t timeout_ms, const char *gloo_host, const char *gloo_iface, int device,
                      void **out);

// imgcap_dist_broadcast copies root's values of n tensors into the other ranks' tensors (in
// place). Tensors are packed into flat buckets of at most bucket_bytes (a larger tensor travels
// alone).
char *imgcap_dist_broadcast(void *group, void **tensors, int n, int root, int64_t bucket_bytes);

// imgcap_dist_allreduce replaces each of n tensors by the sum over ranks (avg != 0: the mean),
// in place, in buckets like imgcap_dist_broadcast.
char *imgcap_dist_allreduce(void *group, void **tensors, int n, int avg, int64_t bucket_bytes);

// imgcap_dist_barrier returns when every rank has called it.
char *imgcap_dist_barrier(void *group);

// imgcap_dist_ensure_grad gives a tensor that has no gradient yet a zero gradient.
char *imgcap_dist_ensure_grad(void *tensor);

// imgcap_dist_free leaves the group and frees it.
void imgcap_dist_free(void *group);

#ifdef __cplusplus
}
#endif

#endif
