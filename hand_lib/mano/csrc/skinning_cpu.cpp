// Fused linear blend skinning on the CPU: forward and backward in one pass over the vertices.
//
// Same contract as hand_lib.mano.lbs._BlendAndApply (the pure PyTorch path, which stays the
// reference and the fallback):
//   weights (V, J), transforms (12, J, B) = [R | t] entries row-major (c * 4 + a),
//   vertices (3, V, B) coordinate-major, translation (3, B) or absent,
//   out[c, v, b] = sum_j w[v, j] (sum_a R_j[c, a](b) x_a[v, b] + t_j[c](b)) + transl[c, b].
// The batch is innermost, so one SIMD vector holds L consecutive hands of one vertex. The
// batch is cut into blocks that the threads share out; in each block the per-joint
// transforms (and, backward, their gradient accumulators) are repacked joint-major and stay
// in cache while the block streams over the vertices, reading each input once and writing
// each output once. Joints whose weight is exactly zero for a vertex are skipped.
// Written with GCC/Clang vector extensions: no intrinsics, any ISA the compiler targets.

#include <torch/extension.h>

#include <ATen/Parallel.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

namespace {

template <typename S>
struct Lanes {
  typedef S vec __attribute__((vector_size(64)));
  static constexpr int64_t L = 64 / sizeof(S);
  // Loads/stores of n <= L lanes (the last vector of a batch that is not a multiple of L).
  // (A constant size compiles to one vector move; only a partial vector pays for memcpy.)
  static inline vec load(const S* p, int64_t n) {
    vec v{};
    if (n == L)
      std::memcpy(&v, p, sizeof(vec));
    else
      std::memcpy(&v, p, sizeof(S) * n);
    return v;
  }
  static inline void store(S* p, const vec& v, int64_t n) {
    if (n == L)
      std::memcpy(p, &v, sizeof(vec));
    else
      std::memcpy(p, &v, sizeof(S) * n);
  }
};

struct Sparsity {
  std::vector<int32_t> ptr, joint;  // CSR of the nonzero weights, row = vertex
};

template <typename S>
Sparsity nonzeros(const S* w, int64_t V, int64_t J) {
  Sparsity s;
  s.ptr.assign(V + 1, 0);
  for (int64_t v = 0; v < V; ++v) {
    for (int64_t j = 0; j < J; ++j)
      if (w[v * J + j] != S(0)) s.joint.push_back(static_cast<int32_t>(j));
    s.ptr[v + 1] = static_cast<int32_t>(s.joint.size());
  }
  return s;
}

// Vectors per block: enough blocks for every thread (twice over), at most 16 vectors
// (256 float lanes: the repacked transforms stay within ~200 KB, i.e. in L2).
int64_t vectors_per_block(int64_t B, int64_t L) {
  const int64_t vectors = (B + L - 1) / L;
  const int64_t threads = std::max<int64_t>(1, at::get_num_threads());
  return std::clamp<int64_t>((vectors + 2 * threads - 1) / (2 * threads), 1, 16);
}

// How the batch is cut: `count` blocks of NS vectors of L lanes (the last may be shorter).
struct Blocking {
  int64_t B, L, NS, count;
  Blocking(int64_t B_, int64_t L_)
      : B(B_), L(L_), NS(vectors_per_block(B_, L_)), count((B_ + NS * L_ - 1) / (NS * L_)) {}
};

struct Block {
  int64_t b0, width, ns, L;  // first lane, lanes, vectors, lanes per vector
  Block(const Blocking& g, int64_t i)
      : b0(i * g.NS * g.L), width(std::min(g.NS * g.L, g.B - b0)), ns((width + g.L - 1) / g.L),
        L(g.L) {}
  int64_t lanes(int64_t s) const { return std::min(L, width - s * L); }
};

// The block's joint transforms, joint-major so that a vertex reads one joint's 12 entries
// contiguously: local[(j * NS + s) * 12 + k] = T[k, j, b0 + s L : ...].
template <typename S>
void pack_transforms(const S* T, int64_t J, const Blocking& g, const Block& b,
                     typename Lanes<S>::vec* local) {
  for (int64_t j = 0; j < J; ++j)
    for (int64_t s = 0; s < b.ns; ++s)
      for (int64_t k = 0; k < 12; ++k)
        local[(j * g.NS + s) * 12 + k] =
            Lanes<S>::load(T + (k * J + j) * g.B + b.b0 + s * b.L, b.lanes(s));
}

template <typename S>
void forward_kernel(const S* W, const S* T, const S* X, const S* tr, S* out, int64_t V,
                    int64_t J, int64_t B) {
  using LN = Lanes<S>;
  using vec = typename LN::vec;
  constexpr int64_t L = LN::L;
  const Sparsity nz = nonzeros(W, V, J);
  const Blocking g(B, L);
  const int64_t NS = g.NS;
  at::parallel_for(0, g.count, 1, [&](int64_t first, int64_t last) {
    std::vector<vec> local(J * NS * 12), shift(NS * 3);
    for (int64_t blk = first; blk < last; ++blk) {
      const Block b(g, blk);
      const int64_t b0 = b.b0, ns = b.ns;
      auto lanes = [&](int64_t s) { return b.lanes(s); };
      pack_transforms<S>(T, J, g, b, local.data());
      for (int64_t s = 0; s < ns; ++s)
        for (int64_t c = 0; c < 3; ++c)
          shift[s * 3 + c] = tr ? LN::load(tr + c * B + b0 + s * L, lanes(s)) : vec{};
      for (int64_t v = 0; v < V; ++v) {
        const S* x0 = X + v * B + b0;
        const S* x1 = X + (V + v) * B + b0;
        const S* x2 = X + (2 * V + v) * B + b0;
        for (int64_t s = 0; s < ns; ++s) {
          vec acc[12];
          for (int k = 0; k < 12; ++k) acc[k] = vec{};
          for (int32_t p = nz.ptr[v]; p < nz.ptr[v + 1]; ++p) {
            const int32_t j = nz.joint[p];
            const S w = W[v * J + j];
            const vec* t = local.data() + (j * NS + s) * 12;
            for (int k = 0; k < 12; ++k) acc[k] += w * t[k];
          }
          const int64_t n = lanes(s), o = s * L;
          const vec x = LN::load(x0 + o, n), y = LN::load(x1 + o, n), z = LN::load(x2 + o, n);
          for (int64_t c = 0; c < 3; ++c) {
            const vec r = acc[4 * c] * x + acc[4 * c + 1] * y + acc[4 * c + 2] * z +
                          acc[4 * c + 3] + shift[s * 3 + c];
            LN::store(out + (c * V + v) * B + b0 + o, r, n);
          }
        }
      }
    }
  });
}

template <typename S>
void backward_kernel(const S* W, const S* T, const S* X, const S* G, S* gT, S* gX, S* gtr,
                     int64_t V, int64_t J, int64_t B) {
  using LN = Lanes<S>;
  using vec = typename LN::vec;
  constexpr int64_t L = LN::L;
  const Sparsity nz = nonzeros(W, V, J);
  const Blocking g(B, L);
  const int64_t NS = g.NS;
  at::parallel_for(0, g.count, 1, [&](int64_t first, int64_t last) {
    std::vector<vec> local(J * NS * 12), acc(J * NS * 12), gshift(NS * 3);
    for (int64_t blk = first; blk < last; ++blk) {
      const Block b(g, blk);
      const int64_t b0 = b.b0, ns = b.ns;
      auto lanes = [&](int64_t s) { return b.lanes(s); };
      pack_transforms<S>(T, J, g, b, local.data());
      std::fill(acc.begin(), acc.end(), vec{});
      std::fill(gshift.begin(), gshift.end(), vec{});
      for (int64_t v = 0; v < V; ++v) {
        for (int64_t s = 0; s < ns; ++s) {
          const int64_t n = lanes(s), o = s * L;
          vec g[3], x[3];
          for (int64_t a = 0; a < 3; ++a) {
            g[a] = LN::load(G + (a * V + v) * B + b0 + o, n);
            x[a] = LN::load(X + (a * V + v) * B + b0 + o, n);
          }
          // d out_c / d [R|t]_j[c, a] = w_vj x_a (x_3 = 1); d out_c / d x_a = sum_j w_vj R_j[c, a]
          vec outer[12], rot[9];
          for (int c = 0; c < 3; ++c) {
            for (int a = 0; a < 3; ++a) {
              outer[4 * c + a] = g[c] * x[a];
              rot[3 * c + a] = vec{};
            }
            outer[4 * c + 3] = g[c];
            gshift[s * 3 + c] += g[c];
          }
          for (int32_t p = nz.ptr[v]; p < nz.ptr[v + 1]; ++p) {
            const int32_t j = nz.joint[p];
            const S w = W[v * J + j];
            const vec* t = local.data() + (j * NS + s) * 12;
            vec* d = acc.data() + (j * NS + s) * 12;
            for (int k = 0; k < 12; ++k) d[k] += w * outer[k];
            for (int c = 0; c < 3; ++c)
              for (int a = 0; a < 3; ++a) rot[3 * c + a] += w * t[4 * c + a];
          }
          for (int a = 0; a < 3; ++a)
            LN::store(gX + (a * V + v) * B + b0 + o,
                      g[0] * rot[a] + g[1] * rot[3 + a] + g[2] * rot[6 + a], n);
        }
      }
      for (int64_t j = 0; j < J; ++j)
        for (int64_t s = 0; s < ns; ++s)
          for (int64_t k = 0; k < 12; ++k)
            LN::store(gT + (k * J + j) * B + b0 + s * L, acc[(j * NS + s) * 12 + k], lanes(s));
      for (int64_t s = 0; s < ns; ++s)
        for (int64_t c = 0; c < 3; ++c)
          LN::store(gtr + c * B + b0 + s * L, gshift[s * 3 + c], lanes(s));
    }
  });
}

void check_inputs(const at::Tensor& weights, const at::Tensor& transforms,
                  const at::Tensor& vertices) {
  TORCH_CHECK(weights.dim() == 2, "weights must be (V, J), got ", weights.sizes());
  const int64_t V = weights.size(0), J = weights.size(1);
  TORCH_CHECK(vertices.dim() == 3 && vertices.size(0) == 3 && vertices.size(1) == V,
              "vertices must be (3, V, B) with V = ", V, ", got ", vertices.sizes());
  const int64_t B = vertices.size(2);
  TORCH_CHECK(transforms.dim() == 3 && transforms.size(0) == 12 && transforms.size(1) == J &&
                  transforms.size(2) == B,
              "transforms must be (12, J, B) = (12, ", J, ", ", B, "), got ", transforms.sizes());
  for (const at::Tensor* t : {&weights, &transforms, &vertices}) {
    TORCH_CHECK(t->device().is_cpu(), "fused skinning runs on the CPU only");
    TORCH_CHECK(t->is_contiguous(), "fused skinning needs contiguous inputs");
    TORCH_CHECK(t->scalar_type() == vertices.scalar_type(),
                "fused skinning needs one dtype, got ", t->scalar_type(), " and ",
                vertices.scalar_type());
  }
}

}  // namespace

at::Tensor skinning_forward(const at::Tensor& weights, const at::Tensor& transforms,
                            const at::Tensor& vertices, const c10::optional<at::Tensor>& transl) {
  check_inputs(weights, transforms, vertices);
  const int64_t V = weights.size(0), J = weights.size(1), B = vertices.size(2);
  if (transl.has_value()) {
    TORCH_CHECK(transl->sizes() == at::IntArrayRef({3, B}) && transl->is_contiguous() &&
                    transl->scalar_type() == vertices.scalar_type(),
                "transl must be contiguous (3, B) = (3, ", B, ") of the vertices' dtype, got ",
                transl->sizes());
  }
  at::Tensor out = at::empty_like(vertices);
  AT_DISPATCH_FLOATING_TYPES(vertices.scalar_type(), "skinning_forward", [&] {
    forward_kernel<scalar_t>(weights.data_ptr<scalar_t>(), transforms.data_ptr<scalar_t>(),
                             vertices.data_ptr<scalar_t>(),
                             transl.has_value() ? transl->data_ptr<scalar_t>() : nullptr,
                             out.data_ptr<scalar_t>(), V, J, B);
  });
  return out;
}

std::vector<at::Tensor> skinning_backward(const at::Tensor& weights, const at::Tensor& transforms,
                                          const at::Tensor& vertices, const at::Tensor& grad_out) {
  check_inputs(weights, transforms, vertices);
  TORCH_CHECK(grad_out.sizes() == vertices.sizes() && grad_out.is_contiguous() &&
                  grad_out.scalar_type() == vertices.scalar_type(),
              "grad_out must be contiguous and shaped like the vertices, got ", grad_out.sizes());
  const int64_t V = weights.size(0), J = weights.size(1), B = vertices.size(2);
  at::Tensor grad_transforms = at::empty_like(transforms);
  at::Tensor grad_vertices = at::empty_like(vertices);
  at::Tensor grad_transl = at::empty({3, B}, vertices.options());
  AT_DISPATCH_FLOATING_TYPES(vertices.scalar_type(), "skinning_backward", [&] {
    backward_kernel<scalar_t>(weights.data_ptr<scalar_t>(), transforms.data_ptr<scalar_t>(),
                              vertices.data_ptr<scalar_t>(), grad_out.data_ptr<scalar_t>(),
                              grad_transforms.data_ptr<scalar_t>(),
                              grad_vertices.data_ptr<scalar_t>(),
                              grad_transl.data_ptr<scalar_t>(), V, J, B);
  });
  return {grad_transforms, grad_vertices, grad_transl};
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("skinning_forward", &skinning_forward, "fused LBS forward (CPU)");
  m.def("skinning_backward", &skinning_backward,
        "fused LBS backward (CPU): grads of transforms, vertices, translation");
}
