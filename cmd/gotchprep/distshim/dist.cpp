// imgcap's shim over libtorch's c10d: see dist.h. Compiled by cgo inside the prepared gotch
// module with the libtorch's flags; gotchprep adds -DIMGCAP_DIST_GLOO -DUSE_C10D_GLOO when the
// Gloo headers compile, and -DIMGCAP_DIST_NCCL -DUSE_C10D_NCCL for a CUDA libtorch whose NCCL
// headers compile. Without either, every group operation returns an error naming what is missing.
#include "dist.h"
#include "shim.h"

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <c10/util/Exception.h>
#include <torch/version.h>

#if defined(IMGCAP_DIST_GLOO) || defined(IMGCAP_DIST_NCCL)
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#include <torch/csrc/distributed/c10d/Types.hpp>
#include <torch/csrc/distributed/c10d/Work.hpp>
#endif
#ifdef IMGCAP_DIST_GLOO
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#endif
#ifdef IMGCAP_DIST_NCCL
#include <c10/cuda/CUDAFunctions.h>
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

#ifndef IMGCAP_DIST_UNAVAILABLE
#define IMGCAP_DIST_UNAVAILABLE "this build of imgcap has no c10d backend"
#endif

namespace {

using imgcap::dup;
using imgcap::guard;

#if defined(IMGCAP_DIST_GLOO) || defined(IMGCAP_DIST_NCCL)

using WorkPtr = c10::intrusive_ptr<c10d::Work>;

struct Group {
  std::string backend;
  int rank = 0;
  int world = 1;
  int device = -1;
  std::chrono::milliseconds timeout{0};
  c10::intrusive_ptr<c10d::Store> store;
#ifdef IMGCAP_DIST_GLOO
  c10::intrusive_ptr<c10d::ProcessGroupGloo> gloo;
#endif
#ifdef IMGCAP_DIST_NCCL
  c10::intrusive_ptr<c10d::ProcessGroupNCCL> nccl;
#endif

  WorkPtr broadcast(std::vector<at::Tensor> &t, int root) {
    c10d::BroadcastOptions o;
    o.rootRank = root;
    o.rootTensor = 0;
    o.timeout = timeout;
#ifdef IMGCAP_DIST_GLOO
    if (gloo) return gloo->broadcast(t, o);
#endif
#ifdef IMGCAP_DIST_NCCL
    if (nccl) return nccl->broadcast(t, o);
#endif
    TORCH_CHECK(false, "process group is closed");
  }

  WorkPtr allreduce(std::vector<at::Tensor> &t) {
    c10d::AllreduceOptions o;
    o.reduceOp = c10d::ReduceOp::SUM;
    o.timeout = timeout;
#ifdef IMGCAP_DIST_GLOO
    if (gloo) return gloo->allreduce(t, o);
#endif
#ifdef IMGCAP_DIST_NCCL
    if (nccl) return nccl->allreduce(t, o);
#endif
    TORCH_CHECK(false, "process group is closed");
  }

  WorkPtr barrier() {
    c10d::BarrierOptions o;
    o.timeout = timeout;
#ifdef IMGCAP_DIST_GLOO
    if (gloo) return gloo->barrier(o);
#endif
#ifdef IMGCAP_DIST_NCCL
    if (nccl) {
      o.device_ids = {device};
      return nccl->barrier(o);
    }
#endif
    TORCH_CHECK(false, "process group is closed");
  }
};

// A bucket is a run of tensors of one dtype and device that travels as one flat tensor.
struct Bucket {
  std::vector<at::Tensor> members;
  at::Tensor flat;  // the tensor sent; members[0] itself when it is alone and contiguous
  bool packed = false;
  WorkPtr work;
};

// kMaxInFlight bounds how many buckets are being communicated at once, and so the extra memory
// the flat copies take.
constexpr size_t kMaxInFlight = 4;

// coalesced runs a broadcast (root >= 0) or a sum/mean all-reduce (root < 0) over tensors in
// buckets of at most bucketBytes, with up to kMaxInFlight buckets in flight.
void coalesced(Group &g, std::vector<at::Tensor> &tensors, int root, bool avg, int64_t bucketBytes) {
  at::NoGradGuard noGrad;
  const bool bcast = root >= 0;
  std::deque<Bucket> inflight;
  auto finish = [&](Bucket &b) {
    b.work->wait();
    if (avg) {
      b.flat.div_(g.world);
    }
    if (b.packed && !(bcast && g.rank == root)) {
      int64_t off = 0;
      for (auto &m : b.members) {
        const int64_t n = m.numel();
        m.copy_(b.flat.narrow(0, off, n).view(m.sizes()));
        off += n;
      }
    }
  };
  auto launch = [&](std::vector<at::Tensor> members) {
    Bucket b;
    b.members = std::move(members);
    if (b.members.size() == 1 && b.members[0].is_contiguous()) {
      b.flat = b.members[0];
    } else {
      std::vector<at::Tensor> flat;
      flat.reserve(b.members.size());
      for (auto &m : b.members) {
        flat.push_back(m.reshape({-1}));
      }
      b.flat = at::cat(flat, 0);
      b.packed = true;
    }
    std::vector<at::Tensor> one{b.flat};
    b.work = bcast ? g.broadcast(one, root) : g.allreduce(one);
    inflight.push_back(std::move(b));
    if (inflight.size() >= kMaxInFlight) {
      finish(inflight.front());
      inflight.pop_front();
    }
  };
  std::vector<at::Tensor> cur;
  int64_t curBytes = 0;
  for (auto &t : tensors) {
    TORCH_CHECK(t.defined(), "undefined tensor");
    if (avg) {
      TORCH_CHECK(at::isFloatingType(t.scalar_type()), "a mean all-reduce needs floating-point tensors, got ",
                  t.scalar_type());
    }
    const int64_t bytes = t.numel() * static_cast<int64_t>(t.element_size());
    const bool fits = !cur.empty() && cur[0].scalar_type() == t.scalar_type() && cur[0].device() == t.device() &&
                      curBytes + bytes <= bucketBytes;
    if (!cur.empty() && !fits) {
      launch(std::move(cur));
      cur.clear();
      curBytes = 0;
    }
    cur.push_back(t);
    curBytes += bytes;
  }
  if (!cur.empty()) {
    launch(std::move(cur));
  }
  // Wait for every bucket even after a failure, so that no work outlives this call; report the
  // first failure.
  std::exception_ptr first;
  while (!inflight.empty()) {
    try {
      finish(inflight.front());
    } catch (...) {
      if (!first) first = std::current_exception();
    }
    inflight.pop_front();
  }
  if (first) std::rethrow_exception(first);
}

std::vector<at::Tensor> tensorList(void **tensors, int n) {
  std::vector<at::Tensor> out;
  out.reserve(n);
  for (int i = 0; i < n; i++) {
    TORCH_CHECK(tensors[i] != nullptr, "tensor ", i, " is null");
    out.push_back(*static_cast<at::Tensor *>(tensors[i]));
  }
  return out;
}

#endif  // any backend

}  // namespace

extern "C" {

int imgcap_dist_features(void) {
  int f = 0;
#ifdef IMGCAP_DIST_GLOO
  f |= IMGCAP_DIST_HAVE_GLOO;
#endif
#ifdef IMGCAP_DIST_NCCL
  f |= IMGCAP_DIST_HAVE_NCCL;
#endif
  return f;
}

#if defined(IMGCAP_DIST_GLOO) || defined(IMGCAP_DIST_NCCL)

char *imgcap_dist_new(const char *backend, const char *master_addr, int master_port, int rank, int world,
                      int64_t timeout_ms, const char *gloo_host, const char *gloo_iface, int device,
                      void **out) {
  *out = nullptr;
  Group *g = new Group();
  g->backend = backend;
  g->rank = rank;
  g->world = world;
  g->device = device;
  g->timeout = std::chrono::milliseconds(timeout_ms);
  const std::string be(backend);
  char *err = guard("rendezvous", [&] {
    TORCH_CHECK(world >= 1 && rank >= 0 && rank < world, "rank ", rank, " of world size ", world);
    TORCH_CHECK(master_port > 0 && master_port < 65536, "port ", master_port, " out of range");
    c10d::TCPStoreOptions so;
    so.port = static_cast<std::uint16_t>(master_port);
    so.isServer = rank == 0;
    so.numWorkers = static_cast<std::size_t>(world);
    so.waitWorkers = true;
    so.timeout = g->timeout;
    g->store = c10::make_intrusive<c10d::TCPStore>(std::string(master_addr), so);
  });
  if (err == nullptr) {
    err = guard(("create the " + be + " process group").c_str(), [&] {
      if (be == "gloo") {
#ifdef IMGCAP_DIST_GLOO
        auto o = c10d::ProcessGroupGloo::Options::create(g->timeout);
        if (gloo_iface != nullptr && gloo_iface[0] != '\0') {
          o->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(gloo_iface));
        } else if (gloo_host != nullptr && gloo_host[0] != '\0') {
          o->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname(gloo_host));
        } else {
          o->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
        }
        o->threads = 2;
        g->gloo = c10::make_intrusive<c10d::ProcessGroupGloo>(g->store, rank, world, o);
#else
        TORCH_CHECK(false, "this build has no Gloo (the Gloo headers did not compile when `make setup` ran: install libgloo-dev and run it again)");
#endif
      } else if (be == "nccl") {
#ifdef IMGCAP_DIST_NCCL
        TORCH_CHECK(device >= 0, "NCCL needs a CUDA device index");
        c10::cuda::set_device(static_cast<c10::DeviceIndex>(device));
        // Blocking wait makes a timed-out or failed collective throw in wait() (an error for
        // the caller) instead of being handled by the watchdog thread, which aborts.
#if TORCH_VERSION_MAJOR >= 2
        setenv("TORCH_NCCL_BLOCKING_WAIT", "1", 0);
#else
        setenv("NCCL_BLOCKING_WAIT", "1", 0);
#endif
        auto o = c10d::ProcessGroupNCCL::Options::create();
        o->timeout = g->timeout;
        g->nccl = c10::make_intrusive<c10d::ProcessGroupNCCL>(g->store, rank, world, o);
#else
        TORCH_CHECK(false, "this build has no NCCL (it needs a CUDA libtorch whose NCCL and CUDA headers compile when `make setup` runs)");
#endif
      } else {
        TORCH_CHECK(false, "unknown backend \"", be, "\": want gloo or nccl");
      }
    });
  }
  if (err != nullptr) {
    delete g;
    return err;
  }
  *out = g;
  return nullptr;
}

char *imgcap_dist_broadcast(void *group, void **tensors, int n, int root, int64_t bucket_bytes) {
  return guard("broadcast", [&] {
    Group &g = *static_cast<Group *>(group);
    TORCH_CHECK(root >= 0 && root < g.world, "root rank ", root, " of world size ", g.world);
    auto ts = tensorList(tensors, n);
    coalesced(g, ts, root, false, bucket_bytes);
  });
}

char *imgcap_dist_allreduce(void *group, void **tensors, int n, int avg, int64_t bucket_bytes) {
  return guard("all-reduce", [&] {
    Group &g = *static_cast<Group *>(group);
    auto ts = tensorList(tensors, n);
    coalesced(g, ts, -1, avg != 0, bucket_bytes);
  });
}

char *imgcap_dist_barrier(void *group) {
  return guard("barrier", [&] { static_cast<Group *>(group)->barrier()->wait(); });
}

void imgcap_dist_free(void *group) {
  Group *g = static_cast<Group *>(group);
  // Destructors join the backend's threads; an exception there must not escape.
  char *err = guard("close", [&] {
#if defined(IMGCAP_DIST_NCCL) && (TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 5))
    // Newer libtorch wants NCCL communicators shut down before the group is destroyed.
    if (g->nccl) g->nccl->shutdown();
#endif
    delete g;
  });
  std::free(err);
}

#else  // no backend

char *imgcap_dist_new(const char *, const char *, int, int, int, int64_t, const char *, const char *, int,
                      void **out) {
  *out = nullptr;
  return dup(IMGCAP_DIST_UNAVAILABLE);
}

char *imgcap_dist_broadcast(void *, void **, int, int, int64_t) { return dup(IMGCAP_DIST_UNAVAILABLE); }

char *imgcap_dist_allreduce(void *, void **, int, int, int64_t) { return dup(IMGCAP_DIST_UNAVAILABLE); }

char *imgcap_dist_barrier(void *) { return dup(IMGCAP_DIST_UNAVAILABLE); }

void imgcap_dist_free(void *) {}

#endif

char *imgcap_dist_ensure_grad(void *tensor) {
  return guard("zero gradient", [&] {
    TORCH_CHECK(tensor != nullptr, "null tensor");
    at::Tensor &t = *static_cast<at::Tensor *>(tensor);
    if (!t.grad().defined()) {
      at::NoGradGuard noGrad;
      t.mutable_grad() = at::zeros_like(t);
    }
  });
}

}  // extern "C"
