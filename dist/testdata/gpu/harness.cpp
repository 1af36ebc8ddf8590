// A C++ check of imgcap's c10d shim (cmd/gotchprep/distshim/dist.cpp) without Go, for machines
// that have a CUDA libtorch but no Go toolchain: run by check.sh. Usage: harness gloo|nccl, with
// RANK, WORLD_SIZE and MASTER_PORT set. It exercises all-reduce (sum and mean), broadcast from
// every root, barrier and zero gradients, with 16-byte buckets (tensors split into buckets of
// their own) and 25 MiB ones (tensors packed together), and prints "OK" on success.
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include <ATen/ATen.h>

#include "dist.h"

static int fail(const std::string &what) {
  std::fprintf(stderr, "FAIL: %s\n", what.c_str());
  return 1;
}

static bool near(const at::Tensor &t, double want) {
  return (t.to(at::kCPU).to(at::kDouble) - want).abs().max().item<double>() < 1e-6;
}

int main(int argc, char **argv) {
  if (argc < 2) return fail("usage: harness gloo|nccl");
  const std::string backend = argv[1];
  const int rank = std::atoi(std::getenv("RANK"));
  const int world = std::atoi(std::getenv("WORLD_SIZE"));
  const int port = std::atoi(std::getenv("MASTER_PORT"));
  std::printf("rank %d of %d, backend %s, features %d\n", rank, world, backend.c_str(), imgcap_dist_features());
  void *g = nullptr;
  const bool cuda = backend == "nccl";
  if (char *err = imgcap_dist_new(backend.c_str(), "127.0.0.1", port, rank, world, 60000, "127.0.0.1", "",
                                  cuda ? 0 : -1, &g)) {
    return fail(err);
  }
  auto opts = at::TensorOptions().device(cuda ? at::Device(at::kCUDA, 0) : at::Device(at::kCPU));
  double tri = world * (world + 1) / 2.0;  // sum of rank+1
  for (int64_t bucket : {int64_t(16), int64_t(25) << 20}) {
    at::Tensor a = at::full({1000}, rank + 1.0, opts.dtype(at::kFloat));
    at::Tensor b = at::full({10}, rank + 1, opts.dtype(at::kLong));
    at::Tensor c = at::full({4, 3}, rank + 1.0, opts.dtype(at::kDouble)).t();  // not contiguous
    void *all[3] = {&a, &b, &c};
    if (char *err = imgcap_dist_allreduce(g, all, 3, 0, bucket)) return fail(err);
    if (!near(a, tri) || !near(b, tri) || !near(c, tri)) return fail("sum");
    a.fill_(rank + 1.0);
    c.fill_(rank + 1.0);
    void *floats[2] = {&a, &c};
    if (char *err = imgcap_dist_allreduce(g, floats, 2, 1, bucket)) return fail(err);
    if (!near(a, tri / world) || !near(c, tri / world)) return fail("mean");
    for (int root = 0; root < world; root++) {
      at::Tensor x = at::full({7}, rank * 10.0, opts.dtype(at::kFloat));
      at::Tensor y = at::full({3, 5}, rank * 1.0, opts.dtype(at::kDouble)).t();
      void *xs[2] = {&x, &y};
      if (char *err = imgcap_dist_broadcast(g, xs, 2, root, bucket)) return fail(err);
      if (!near(x, root * 10.0) || !near(y, root)) return fail("broadcast from " + std::to_string(root));
    }
    if (char *err = imgcap_dist_barrier(g)) return fail(err);
  }
  at::Tensor p = at::ones({3}, opts).set_requires_grad(true);
  if (char *err = imgcap_dist_ensure_grad(&p)) return fail(err);
  if (!p.grad().defined() || !near(p.grad(), 0)) return fail("ensure_grad");
  // Errors are returned, not thrown: a mean of integers is refused.
  at::Tensor i = at::ones({3}, opts.dtype(at::kLong));
  void *is[1] = {&i};
  char *err = imgcap_dist_allreduce(g, is, 1, 1, 1 << 20);
  if (err == nullptr) return fail("mean of integers accepted");
  std::printf("expected error: %s\n", err);
  std::free(err);
  imgcap_dist_free(g);
  std::printf("OK rank %d %s\n", rank, backend.c_str());
  return 0;
}
