// Diffusion for .NET — a C ABI over libtorch for the C# trainer.
// Conventions: every function returns 0 on success and -1 on failure; results come back through out-parameters;
// on failure dt_last_error() returns the libtorch message (thread-local, owned here, valid until the next failing
// call on the same thread). A Tensor handle is a heap-allocated torch::Tensor, released with dt_free.
#include <torch/torch.h>
#include <ATen/ATen.h>
#include <cstring>
#include <string>
#include <vector>

#define DT_API extern "C" __attribute__((visibility("default")))

using Tensor = torch::Tensor*;

namespace {
thread_local std::string last_error;

template <typename F>
int guard(F&& body) {
  try {
    body();
    return 0;
  } catch (const c10::Error& e) {
    last_error = e.what_without_backtrace();
  } catch (const std::exception& e) {
    last_error = e.what();
  } catch (...) {
    last_error = "unknown C++ exception";
  }
  return -1;
}

Tensor wrap(torch::Tensor t) { return new torch::Tensor(std::move(t)); }

std::vector<int64_t> dims(const int64_t* p, int n) { return std::vector<int64_t>(p, p + n); }

c10::ScalarType dtype_of(int code) {
  switch (code) {
    case 0: return torch::kFloat32;
    case 1: return torch::kInt64;
    case 2: return torch::kFloat64;
    case 3: return torch::kUInt8;
    case 4: return torch::kBool;
    default: throw std::invalid_argument("unknown dtype code " + std::to_string(code));
  }
}

int code_of(c10::ScalarType t) {
  switch (t) {
    case torch::kFloat32: return 0;
    case torch::kInt64: return 1;
    case torch::kFloat64: return 2;
    case torch::kUInt8: return 3;
    case torch::kBool: return 4;
    default: return -1;
  }
}

torch::Device device_of(int type, int index) {
  return type == 1 ? torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(index)) : torch::Device(torch::kCPU);
}
}  // namespace

// ---- errors, lifetime, process settings ----
DT_API const char* dt_last_error() { return last_error.c_str(); }
DT_API void dt_free(Tensor t) { delete t; }
DT_API int dt_cuda_available() { return torch::cuda::is_available() ? 1 : 0; }
DT_API int dt_set_num_threads(int n) { return guard([&] { torch::set_num_threads(n); }); }
DT_API int dt_get_num_threads() { return torch::get_num_threads(); }
DT_API int dt_manual_seed(uint64_t seed) { return guard([&] { torch::manual_seed(seed); }); }
DT_API const char* dt_version() { return TORCH_VERSION; }

// ---- creation ----
DT_API int dt_from_data(const void* data, int dtype, const int64_t* shape, int ndim, Tensor* out) {
  return guard([&] {
    auto t = torch::empty(dims(shape, ndim), torch::TensorOptions().dtype(dtype_of(dtype)));
    std::memcpy(t.data_ptr(), data, t.nbytes());
    *out = wrap(t);
  });
}
DT_API int dt_full(const int64_t* shape, int ndim, double value, int dtype, int device, int index, Tensor* out) {
  return guard([&] { *out = wrap(torch::full(dims(shape, ndim), value, torch::TensorOptions().dtype(dtype_of(dtype)).device(device_of(device, index)))); });
}
DT_API int dt_arange(int64_t n, int dtype, Tensor* out) {
  return guard([&] { *out = wrap(torch::arange(n, torch::TensorOptions().dtype(dtype_of(dtype)))); });
}

// Random draws from a generator (null: the default one). kind 0 = N(0,1), 1 = U[0,1), 2 = integers in [0, high).
DT_API int dt_random(int kind, const int64_t* shape, int ndim, int64_t high, torch::Generator* gen, int device, int index, Tensor* out) {
  return guard([&] {
    auto opts = torch::TensorOptions().device(device_of(device, index));
    c10::optional<at::Generator> g = gen ? c10::optional<at::Generator>(*gen) : c10::nullopt;
    auto shp = dims(shape, ndim);
    switch (kind) {
      case 0: *out = wrap(at::randn(shp, g, opts.dtype(torch::kFloat32))); break;
      case 1: *out = wrap(at::rand(shp, g, opts.dtype(torch::kFloat32))); break;
      case 2: *out = wrap(at::randint(high, shp, g, opts.dtype(torch::kInt64))); break;
      default: throw std::invalid_argument("unknown random kind");
    }
  });
}

// ---- generators (their state is a uint8 tensor, saved in checkpoints) ----
DT_API int dt_generator_new(uint64_t seed, torch::Generator** out) {
  return guard([&] {
    auto g = at::detail::createCPUGenerator(seed);
    *out = new torch::Generator(g);
  });
}
DT_API void dt_generator_free(torch::Generator* g) { delete g; }
// A handle on libtorch's default CPU generator (used by dropout); free the handle, not the generator, with dt_generator_free.
DT_API int dt_default_generator(torch::Generator** out) {
  return guard([&] { *out = new torch::Generator(at::detail::getDefaultCPUGenerator()); });
}
DT_API int dt_generator_get_state(torch::Generator* g, Tensor* out) { return guard([&] { *out = wrap(g->get_state()); }); }
DT_API int dt_generator_set_state(torch::Generator* g, Tensor state) { return guard([&] { g->set_state(*state); }); }

// ---- inspection and copies ----
DT_API int dt_ndim(Tensor t) { return static_cast<int>(t->dim()); }
DT_API int dt_shape(Tensor t, int64_t* shape) {
  return guard([&] { for (int64_t i = 0; i < t->dim(); i++) shape[i] = t->size(i); });
}
DT_API int dt_dtype(Tensor t) { return code_of(t->scalar_type()); }
DT_API int dt_device(Tensor t) { return t->is_cuda() ? 1 : 0; }
DT_API int dt_copy_out(Tensor t, void* dst, int64_t bytes) {
  return guard([&] {
    auto c = t->detach().to(torch::kCPU).contiguous();
    if (static_cast<int64_t>(c.nbytes()) != bytes)
      throw std::invalid_argument("copy_out: destination holds " + std::to_string(bytes) + " bytes, tensor " + std::to_string(c.nbytes()));
    std::memcpy(dst, c.data_ptr(), c.nbytes());
  });
}
DT_API int dt_copy_in(Tensor t, const void* src, int64_t bytes) {
  return guard([&] {
    if (!t->is_contiguous() || t->is_cuda()) throw std::invalid_argument("copy_in needs a contiguous CPU tensor");
    if (static_cast<int64_t>(t->nbytes()) != bytes) throw std::invalid_argument("copy_in: size mismatch");
    std::memcpy(t->data_ptr(), src, bytes);
  });
}
DT_API int dt_item(Tensor t, double* out) { return guard([&] { *out = t->item<double>(); }); }
DT_API int dt_to(Tensor t, int device, int index, int dtype, Tensor* out) {
  return guard([&] { *out = wrap(t->to(device_of(device, index), dtype < 0 ? t->scalar_type() : dtype_of(dtype))); });
}
DT_API int dt_clone(Tensor t, Tensor* out) { return guard([&] { *out = wrap(t->clone()); }); }
DT_API int dt_detach(Tensor t, Tensor* out) { return guard([&] { *out = wrap(t->detach()); }); }
DT_API int dt_contiguous(Tensor t, Tensor* out) { return guard([&] { *out = wrap(t->contiguous()); }); }

// ---- elementwise ----
// Binary ops: 0 add, 1 sub, 2 mul, 3 div, 4 pow, 5 maximum, 6 minimum.
DT_API int dt_binary(int op, Tensor a, Tensor b, Tensor* out) {
  return guard([&] {
    switch (op) {
      case 0: *out = wrap(*a + *b); break;
      case 1: *out = wrap(*a - *b); break;
      case 2: *out = wrap(*a * *b); break;
      case 3: *out = wrap(*a / *b); break;
      case 4: *out = wrap(a->pow(*b)); break;
      case 5: *out = wrap(torch::maximum(*a, *b)); break;
      case 6: *out = wrap(torch::minimum(*a, *b)); break;
      default: throw std::invalid_argument("unknown binary op");
    }
  });
}
// Binary with a scalar right-hand side (same op codes); 7 = scalar − tensor (rsub).
DT_API int dt_binary_scalar(int op, Tensor a, double s, Tensor* out) {
  return guard([&] {
    switch (op) {
      case 0: *out = wrap(*a + s); break;
      case 1: *out = wrap(*a - s); break;
      case 2: *out = wrap(*a * s); break;
      case 3: *out = wrap(*a / s); break;
      case 4: *out = wrap(a->pow(s)); break;
      case 5: *out = wrap(a->clamp_min(s)); break;
      case 6: *out = wrap(a->clamp_max(s)); break;
      case 7: *out = wrap(s - *a); break;
      default: throw std::invalid_argument("unknown scalar op");
    }
  });
}
// Unary ops: 0 neg, 1 exp, 2 log, 3 sqrt, 4 sin, 5 cos, 6 silu, 7 relu, 8 sigmoid, 9 tanh, 10 abs, 11 rsqrt, 12 floor, 13 square.
DT_API int dt_unary(int op, Tensor a, Tensor* out) {
  return guard([&] {
    switch (op) {
      case 0: *out = wrap(-*a); break;
      case 1: *out = wrap(a->exp()); break;
      case 2: *out = wrap(a->log()); break;
      case 3: *out = wrap(a->sqrt()); break;
      case 4: *out = wrap(a->sin()); break;
      case 5: *out = wrap(a->cos()); break;
      case 6: *out = wrap(torch::silu(*a)); break;
      case 7: *out = wrap(torch::relu(*a)); break;
      case 8: *out = wrap(torch::sigmoid(*a)); break;
      case 9: *out = wrap(torch::tanh(*a)); break;
      case 10: *out = wrap(a->abs()); break;
      case 11: *out = wrap(a->rsqrt()); break;
      case 12: *out = wrap(a->floor()); break;
      case 13: *out = wrap(a->square()); break;
      default: throw std::invalid_argument("unknown unary op");
    }
  });
}
DT_API int dt_where(Tensor cond, Tensor a, Tensor b, Tensor* out) { return guard([&] { *out = wrap(torch::where(*cond, *a, *b)); }); }
DT_API int dt_compare_scalar(int op, Tensor a, double s, Tensor* out) {  // 0 <, 1 >, 2 ==
  return guard([&] { *out = wrap(op == 0 ? a->lt(s) : op == 1 ? a->gt(s) : a->eq(s)); });
}

// ---- in-place updates (optimizers, EMA; the caller disables grad) ----
DT_API int dt_add_(Tensor a, Tensor b, double alpha) { return guard([&] { a->add_(*b, alpha); }); }
DT_API int dt_mul_scalar_(Tensor a, double s) { return guard([&] { a->mul_(s); }); }
DT_API int dt_addcmul_(Tensor a, Tensor b, Tensor c, double value) { return guard([&] { a->addcmul_(*b, *c, value); }); }
DT_API int dt_addcdiv_(Tensor a, Tensor b, Tensor c, double value) { return guard([&] { a->addcdiv_(*b, *c, value); }); }
DT_API int dt_copy_(Tensor dst, Tensor src) { return guard([&] { dst->copy_(*src); }); }
DT_API int dt_zero_(Tensor a) { return guard([&] { a->zero_(); }); }

// ---- shape ----
DT_API int dt_reshape(Tensor a, const int64_t* shape, int ndim, Tensor* out) { return guard([&] { *out = wrap(a->reshape(dims(shape, ndim))); }); }
DT_API int dt_permute(Tensor a, const int64_t* order, int ndim, Tensor* out) { return guard([&] { *out = wrap(a->permute(dims(order, ndim))); }); }
DT_API int dt_transpose(Tensor a, int64_t d0, int64_t d1, Tensor* out) { return guard([&] { *out = wrap(a->transpose(d0, d1)); }); }
DT_API int dt_cat(const Tensor* ts, int n, int64_t dim, Tensor* out) {
  return guard([&] {
    std::vector<torch::Tensor> v;
    for (int i = 0; i < n; i++) v.push_back(*ts[i]);
    *out = wrap(torch::cat(v, dim));
  });
}
DT_API int dt_narrow(Tensor a, int64_t dim, int64_t start, int64_t length, Tensor* out) { return guard([&] { *out = wrap(a->narrow(dim, start, length)); }); }
DT_API int dt_index_select(Tensor a, int64_t dim, Tensor index, Tensor* out) { return guard([&] { *out = wrap(a->index_select(dim, *index)); }); }
DT_API int dt_flip(Tensor a, int64_t dim, Tensor* out) { return guard([&] { *out = wrap(a->flip({dim})); }); }

// ---- reductions ----
DT_API int dt_sum(Tensor a, Tensor* out) { return guard([&] { *out = wrap(a->sum()); }); }
DT_API int dt_mean(Tensor a, Tensor* out) { return guard([&] { *out = wrap(a->mean()); }); }
DT_API int dt_mean_dims(Tensor a, const int64_t* d, int n, int keepdim, Tensor* out) {
  return guard([&] { *out = wrap(a->mean(dims(d, n), keepdim != 0)); });
}
DT_API int dt_sum_dims(Tensor a, const int64_t* d, int n, int keepdim, Tensor* out) {
  return guard([&] { *out = wrap(a->sum(dims(d, n), keepdim != 0)); });
}
DT_API int dt_argmax(Tensor a, int64_t dim, Tensor* out) { return guard([&] { *out = wrap(a->argmax(dim)); }); }

// ---- neural-network ops ----
DT_API int dt_conv2d(Tensor x, Tensor w, Tensor b, int64_t stride, int64_t padding, Tensor* out) {
  return guard([&] {
    *out = wrap(torch::conv2d(*x, *w, b ? *b : torch::Tensor(), {stride, stride}, {padding, padding}));
  });
}
DT_API int dt_linear(Tensor x, Tensor w, Tensor b, Tensor* out) { return guard([&] { *out = wrap(torch::linear(*x, *w, b ? *b : torch::Tensor())); }); }
DT_API int dt_matmul(Tensor a, Tensor b, Tensor* out) { return guard([&] { *out = wrap(torch::matmul(*a, *b)); }); }
DT_API int dt_group_norm(Tensor x, int64_t groups, Tensor w, Tensor b, double eps, Tensor* out) {
  return guard([&] { *out = wrap(torch::group_norm(*x, groups, w ? *w : torch::Tensor(), b ? *b : torch::Tensor(), eps)); });
}
DT_API int dt_softmax(Tensor x, int64_t dim, Tensor* out) { return guard([&] { *out = wrap(torch::softmax(*x, dim)); }); }
DT_API int dt_log_softmax(Tensor x, int64_t dim, Tensor* out) { return guard([&] { *out = wrap(torch::log_softmax(*x, dim)); }); }
DT_API int dt_upsample_nearest2d(Tensor x, int64_t scale, Tensor* out) {
  return guard([&] {
    *out = wrap(torch::upsample_nearest2d(*x, {x->size(2) * scale, x->size(3) * scale}));
  });
}
DT_API int dt_avg_pool2d(Tensor x, int64_t kernel, Tensor* out) { return guard([&] { *out = wrap(torch::avg_pool2d(*x, {kernel, kernel})); }); }
DT_API int dt_dropout(Tensor x, double p, int train, Tensor* out) { return guard([&] { *out = wrap(torch::dropout(*x, p, train != 0)); }); }
DT_API int dt_mse_loss(Tensor a, Tensor b, Tensor* out) { return guard([&] { *out = wrap(torch::mse_loss(*a, *b)); }); }
DT_API int dt_nll_loss(Tensor logp, Tensor target, Tensor* out) { return guard([&] { *out = wrap(torch::nll_loss(*logp, *target)); }); }

// ---- autograd ----
DT_API int dt_set_requires_grad(Tensor t, int value) { return guard([&] { t->requires_grad_(value != 0); }); }
DT_API int dt_requires_grad(Tensor t) { return t->requires_grad() ? 1 : 0; }
DT_API int dt_backward(Tensor t) { return guard([&] { t->backward(); }); }
// The gradient accumulated in a leaf, or null when it has none.
DT_API int dt_grad(Tensor t, Tensor* out) {
  return guard([&] {
    auto g = t->grad();
    *out = g.defined() ? wrap(g) : nullptr;
  });
}
DT_API int dt_zero_grad(Tensor t) {
  return guard([&] {
    auto& g = t->mutable_grad();
    if (g.defined()) g = torch::Tensor();
  });
}
DT_API int dt_set_grad_enabled(int enabled) { bool previous = at::GradMode::is_enabled(); at::GradMode::set_enabled(enabled != 0); return previous ? 1 : 0; }

// ---- serialization: a list of tensors in libtorch's archive format ----
DT_API int dt_save(const Tensor* ts, int n, const char* path) {
  return guard([&] {
    std::vector<torch::Tensor> v;
    for (int i = 0; i < n; i++) v.push_back(ts[i]->detach().to(torch::kCPU));
    torch::save(v, path);
  });
}
// Loads a list saved by dt_save; *out receives an array of n handles, released (the array only) with dt_free_array.
DT_API int dt_load(const char* path, Tensor** out, int* n) {
  return guard([&] {
    std::vector<torch::Tensor> v;
    torch::load(v, path);
    auto arr = static_cast<Tensor*>(std::malloc(sizeof(Tensor) * (v.empty() ? 1 : v.size())));
    for (size_t i = 0; i < v.size(); i++) arr[i] = wrap(v[i]);
    *out = arr;
    *n = static_cast<int>(v.size());
  });
}
DT_API void dt_free_array(Tensor* arr) { std::free(arr); }
