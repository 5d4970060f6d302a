// Quantized linear layer timings on the GPU: batch-1 GEMV for Llama-3-8B shapes in EXL2 4.0/2.5/6.0 bpw, GPTQ
// 4-bit g128 and FP16 (head at EXL2 6-bit), num_tokens 2..32 for the MLP shapes, and a 2048-token GEMM; plus the
// device-to-device copy bandwidth in the same run. Weight copies are rotated so the 50 MB L2 does not hold them;
// each number is the median over repetitions of a CUDA graph of calls, timed with events.
// One-token rows of EXL2/GPTQ layers are also timed on the decode path (format "...+frag": the input already in
// fragment order, gemv_one without a gather; see kernels/frag.cuh).
// Usage: bench_linear [--json out.json] [--quick | --fp16-head] [--tune key=value]...
// --fp16-head: only the fp16 lm_head (4096 -> 128256) at 1 token (kernels::gemv_f16).
// --tune: a launch knob of the layers (cuda::CudaTuning, docs/tuning.md), as exl bench --tune.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <future>
#include <random>
#include <string>
#include <vector>

#include "backend/cuda/cuda_check.h"
#include "backend/cuda/cuda_linear.h"
#include "backend/cuda/device_buffer.h"
#include "backend/cuda/tuning.h"
#include "core/fp16.h"
#include "quant/exl2_pack.h"
#include "quant/gptq.h"
#include "quant/linear_weight.h"

namespace {

using namespace exl;

struct LayerShape {
  const char* name;
  int64_t in, out;
};

enum class Fmt { kExl2_40, kExl2_25, kExl2_60, kGptq4, kFp16, kExl2Head6 };

const char* fmt_name(Fmt f) {
  switch (f) {
    case Fmt::kExl2_40: return "exl2-4.0";
    case Fmt::kExl2_25: return "exl2-2.5";
    case Fmt::kExl2_60: return "exl2-6.0";
    case Fmt::kGptq4: return "gptq4-g128";
    case Fmt::kFp16: return "fp16";
    case Fmt::kExl2Head6: return "exl2-6bit";
  }
  return "?";
}

std::vector<float> random_weights(int64_t n, uint64_t seed) {
  std::vector<float> v(static_cast<size_t>(n));
  uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1;
  for (auto& x : v) {  // cheap uniform noise in +-0.03; values only need to be non-trivial
    s ^= s << 13, s ^= s >> 7, s ^= s << 17;
    x = (static_cast<float>(s >> 40) / 16777216.0f - 0.5f) * 0.06f;
  }
  return v;
}

quant::LinearWeight make_weight(Fmt f, const LayerShape& s, uint64_t seed) {
  const int64_t N = s.out, K = s.in;
  quant::LinearWeight lw;
  lw.key = s.name;
  lw.in_features = K;
  lw.out_features = N;
  const std::vector<float> w = random_weights(N * K, seed);
  switch (f) {
    case Fmt::kFp16: {
      lw.format = quant::WeightFormat::kFloat;
      lw.float_weight = Tensor(DType::kF16, {N, K});
      for (int64_t i = 0; i < N * K; ++i) lw.float_weight.data<uint16_t>()[i] = float_to_half(w[i]);
      break;
    }
    case Fmt::kGptq4: {
      lw.format = quant::WeightFormat::kGptq;
      quant::GptqPackOptions o;
      o.group_size = 128;
      lw.gptq = quant::pack_gptq_rtn(w, N, K, o);
      break;
    }
    default: {
      lw.format = quant::WeightFormat::kExl2;
      const double bpw = f == Fmt::kExl2_40 ? 4.0 : f == Fmt::kExl2_25 ? 2.5 : 6.0;
      quant::Exl2PackOptions o = quant::exl2_options_for_bpw(bpw);
      o.seed = seed;
      lw.exl2 = quant::pack_exl2_rtn(w, N, K, o);
      break;
    }
  }
  return lw;
}

double weight_bytes(const quant::LinearWeight& lw) {
  return static_cast<double>(lw.stored_bytes());
}

struct Result {
  std::string fmt, shape;
  int64_t in, out, tokens;
  double us, tbps, tflops, bytes;
};

// Median time of one call over `reps` graph replays of `calls` calls (run(copy)) that rotate through the copies.
template <typename Run>
double time_calls(std::vector<cuda::CudaLinear>& copies, cudaStream_t st, int reps, Run&& run) {
  const int calls = static_cast<int>(std::max<size_t>(copies.size(), 8));
  for (int i = 0; i < 3; ++i) run(copies[i % copies.size()]);  // warm-up, outside capture
  EXL_CUDA_CHECK(cudaStreamSynchronize(st));
  cudaGraph_t graph;
  EXL_CUDA_CHECK(cudaStreamBeginCapture(st, cudaStreamCaptureModeThreadLocal));
  for (int i = 0; i < calls; ++i) run(copies[i % copies.size()]);
  EXL_CUDA_CHECK(cudaStreamEndCapture(st, &graph));
  cudaGraphExec_t exec;
  EXL_CUDA_CHECK(cudaGraphInstantiate(&exec, graph, 0));
  EXL_CUDA_CHECK(cudaGraphLaunch(exec, st));
  cuda::Event a, b;
  std::vector<double> t;
  for (int r = 0; r < reps; ++r) {
    a.record(st);
    EXL_CUDA_CHECK(cudaGraphLaunch(exec, st));
    b.record(st);
    t.push_back(b.elapsed_ms_since(a) * 1000.0 / calls);
  }
  cudaGraphExecDestroy(exec);
  cudaGraphDestroy(graph);
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

double time_forward(std::vector<cuda::CudaLinear>& copies, int64_t M, cuda::LinearContext ctx, const __half* x,
                    __half* y, int reps) {
  return time_calls(copies, ctx.stream, reps, [&](const cuda::CudaLinear& l) { l.forward(x, y, M, ctx); });
}

double copy_bandwidth(cudaStream_t st) {
  const size_t bytes = size_t{1} << 30;
  cuda::DeviceBuffer a(bytes), b(bytes);
  EXL_CUDA_CHECK(cudaMemset(a.get(), 1, bytes));
  cuda::Event e0, e1;
  std::vector<double> t;
  for (int r = 0; r < 12; ++r) {
    e0.record(st);
    EXL_CUDA_CHECK(cudaMemcpyAsync(b.get(), a.get(), bytes, cudaMemcpyDeviceToDevice, st));
    e1.record(st);
    t.push_back(e1.elapsed_ms_since(e0));
  }
  std::sort(t.begin(), t.end());
  return 2.0 * bytes / (t[t.size() / 2] * 1e-3) / 1e12;
}

}  // namespace

int main(int argc, char** argv) {
  std::string json_path;
  bool quick = false, fp16_head = false;
  std::vector<std::string> tunes;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--json") && i + 1 < argc) json_path = argv[++i];
    if (!std::strcmp(argv[i], "--quick")) quick = true;
    if (!std::strcmp(argv[i], "--fp16-head")) fp16_head = true;
    if (!std::strcmp(argv[i], "--tune") && i + 1 < argc) tunes.push_back(argv[++i]);
  }
  try {
    cuda::LinearOptions lopt;
    for (const std::string& kv : tunes) cuda::set_tuning(lopt.tuning, kv);
    cuda::validate_tuning(lopt.tuning);
    if (!tunes.empty()) std::printf("tuning: %s\n", cuda::tuning_changes(lopt.tuning).c_str());
    cudaDeviceProp prop{};
    EXL_CUDA_CHECK(cudaGetDeviceProperties(&prop, 0));
    cuda::Stream stream;
    cuda::CublasHandle cublas;
    const double copy_tbps = copy_bandwidth(stream.get());
    std::printf("device: %s, %d SMs, L2 %d MB; device-to-device copy %.3f TB/s (read + write)\n", prop.name,
                prop.multiProcessorCount, prop.l2CacheSize >> 20, copy_tbps);

    const std::vector<LayerShape> shapes = {{"q_proj", 4096, 4096},      {"k_proj", 4096, 1024},
                                       {"o_proj", 4096, 4096},      {"gate_proj", 4096, 14336},
                                       {"down_proj", 14336, 4096},  {"lm_head", 4096, 128256}};
    struct Job {
      Fmt fmt;
      LayerShape shape;
      std::vector<int64_t> tokens;
    };
    std::vector<Job> jobs;
    const std::vector<int64_t> many = {1, 2, 4, 8, 16, 32, 2048};
    for (Fmt f : {Fmt::kExl2_40, Fmt::kExl2_25, Fmt::kExl2_60, Fmt::kGptq4, Fmt::kFp16}) {
      for (size_t si = 0; si + 1 < shapes.size(); ++si) {
        const bool mlp = si == 3 || si == 4;
        if (quick && f != Fmt::kExl2_40 && si != 4) continue;
        jobs.push_back({f, shapes[si], mlp ? many : std::vector<int64_t>{1, 2048}});
      }
    }
    if (!quick) jobs.push_back({Fmt::kExl2Head6, shapes[5], {1, 8}});
    if (fp16_head) jobs = {{Fmt::kFp16, shapes[5], {1}}};

    // Build the host weights in parallel (packing is the slow part of this program).
    std::vector<std::future<quant::LinearWeight>> weights;
    for (size_t i = 0; i < jobs.size(); ++i) {
      Fmt f = jobs[i].fmt == Fmt::kExl2Head6 ? Fmt::kExl2_60 : jobs[i].fmt;
      weights.push_back(std::async(std::launch::async, make_weight, f, jobs[i].shape, 1000 + i));
    }

    const int64_t max_tokens = 2048;
    const int64_t max_in = 14336, max_out = 128256;
    cuda::DeviceBuffer x(static_cast<size_t>(max_tokens * max_in) * 2);
    cuda::DeviceBuffer y(static_cast<size_t>(max_tokens * max_out) * 2);
    {
      std::vector<uint16_t> xh(static_cast<size_t>(max_tokens * max_in));
      std::mt19937 rng(3);
      for (auto& v : xh) v = float_to_half(std::uniform_real_distribution<float>(-1, 1)(rng));
      x.upload(xh.data(), xh.size() * 2);
    }
    std::vector<Result> results;
    std::printf("%-11s %-10s %6s %6s %6s %10s %8s %8s\n", "format", "layer", "in", "out", "tokens", "us", "TB/s",
                "TFLOP/s");
    for (size_t i = 0; i < jobs.size(); ++i) {
      const Job& job = jobs[i];
      const quant::LinearWeight lw = weights[i].get();
      const double bytes = weight_bytes(lw);
      const int copies_n = static_cast<int>(std::clamp(200e6 / bytes, 2.0, 24.0));
      std::vector<cuda::CudaLinear> copies;
      for (int c = 0; c < copies_n; ++c) copies.push_back(cuda::CudaLinear::create(lw, lopt));
      int64_t scratch_n = 0;
      for (int64_t M : job.tokens) {
        if (M > cuda::CudaLinear::kGemvMaxTokens && job.shape.out > 20000) continue;
        scratch_n = std::max(scratch_n, M > cuda::CudaLinear::kGemvMaxTokens ? copies[0].scratch_elements_needed()
                                                                             : copies[0].min_scratch_elements());
      }
      cuda::DeviceBuffer scratch(static_cast<size_t>(std::max<int64_t>(scratch_n, 8)) * 2);
      for (int64_t M : job.tokens) {
        if (M > cuda::CudaLinear::kGemvMaxTokens && job.shape.out > 20000) continue;
        cuda::LinearContext ctx{stream.get(), cublas.get(), scratch.as<__half>(), scratch_n};
        const double us = time_forward(copies, M, ctx, x.as<__half>(), y.as<__half>(), quick ? 9 : 21);
        const double tbps = bytes / (us * 1e-6) / 1e12;
        const double tflops = 2.0 * M * job.shape.in * job.shape.out / (us * 1e-6) / 1e12;
        results.push_back({fmt_name(job.fmt), job.shape.name, job.shape.in, job.shape.out, M, us, tbps, tflops, bytes});
        std::printf("%-11s %-10s %6lld %6lld %6lld %10.2f %8.3f %8.2f\n", fmt_name(job.fmt), job.shape.name,
                    static_cast<long long>(job.shape.in), static_cast<long long>(job.shape.out),
                    static_cast<long long>(M), us, tbps, tflops);
        std::fflush(stdout);
        if (M == 1 && copies[0].frag_capable()) {
          // The decode path: the input already in fragment order (kernels/frag.cuh), gemv_one without a gather.
          // x's random halves stand in for it (the values do not change the work).
          const double fus = time_calls(copies, stream.get(), quick ? 9 : 21, [&](const cuda::CudaLinear& l) {
            l.forward_frag(x.as<__half>(), y.as<__half>(), ctx);
          });
          const std::string name = std::string(fmt_name(job.fmt)) + "+frag";
          results.push_back({name, job.shape.name, job.shape.in, job.shape.out, 1, fus, bytes / (fus * 1e-6) / 1e12,
                             2.0 * job.shape.in * job.shape.out / (fus * 1e-6) / 1e12, bytes});
          std::printf("%-11s %-10s %6lld %6lld %6lld %10.2f %8.3f %8.2f\n", name.c_str(), job.shape.name,
                      static_cast<long long>(job.shape.in), static_cast<long long>(job.shape.out), 1LL, fus,
                      bytes / (fus * 1e-6) / 1e12, 2.0 * job.shape.in * job.shape.out / (fus * 1e-6) / 1e12);
          std::fflush(stdout);
        }
      }
    }
    // Split-K sweep for the 4-bit MLP shapes at one token (target shape: down_proj, out 4096, in 14336). One token
    // runs gemv_one (no split-K) where kernels::gemv_one_preferred picks it: K <= 8192 and more than one split.
    if (!fp16_head)
      std::printf("\nsplit-K sweep, exl2-4.0, 1 token\n%-10s %7s %10s %8s\n", "layer", "splits", "us", "TB/s");
    for (const LayerShape& s : {shapes[4], shapes[3], shapes[0]}) {
      if (fp16_head) break;
      const quant::LinearWeight lw = make_weight(Fmt::kExl2_40, s, 77);
      const double bytes = weight_bytes(lw);
      const std::vector<int32_t> split_list = s.in == 14336    ? std::vector<int32_t>{0, 4, 6, 8, 12, 16, 24, 33}
                                              : s.out == 14336 ? std::vector<int32_t>{0, 1, 2, 3, 4, 6, 8}
                                                               : std::vector<int32_t>{0, 2, 4, 8, 12, 16, 32};
      for (int32_t sp : split_list) {
        std::vector<cuda::CudaLinear> copies;
        cuda::LinearOptions split_opt = lopt;
        split_opt.gemv_splits = sp;
        for (int c = 0; c < 3; ++c) copies.push_back(cuda::CudaLinear::create(lw, split_opt));
        const int64_t scratch_n = copies[0].min_scratch_elements();
        cuda::DeviceBuffer scratch(static_cast<size_t>(scratch_n) * 2);
        cuda::LinearContext ctx{stream.get(), cublas.get(), scratch.as<__half>(), scratch_n};
        const double us = time_forward(copies, 1, ctx, x.as<__half>(), y.as<__half>(), 21);
        std::printf("%-10s %7d %10.2f %8.3f\n", s.name, copies[0].gemv_splits(), us, bytes / (us * 1e-6) / 1e12);
        results.push_back({"exl2-4.0-splits-" + std::to_string(copies[0].gemv_splits()), s.name, s.in, s.out, 1, us,
                           bytes / (us * 1e-6) / 1e12, 2.0 * s.in * s.out / (us * 1e-6) / 1e12, bytes});
      }
    }
    if (!json_path.empty()) {
      FILE* f = std::fopen(json_path.c_str(), "w");
      if (!f) throw std::runtime_error("cannot write " + json_path);
      std::fprintf(f, "{\n  \"device\": \"%s\",\n  \"copy_tbps\": %.4f,\n  \"results\": [\n", prop.name, copy_tbps);
      for (size_t i = 0; i < results.size(); ++i) {
        const Result& r = results[i];
        std::fprintf(f,
                     "    {\"format\": \"%s\", \"layer\": \"%s\", \"in\": %lld, \"out\": %lld, \"tokens\": %lld, "
                     "\"us\": %.3f, \"weight_bytes\": %.0f, \"tbps\": %.4f, \"tflops\": %.3f}%s\n",
                     r.fmt.c_str(), r.shape.c_str(), static_cast<long long>(r.in), static_cast<long long>(r.out),
                     static_cast<long long>(r.tokens), r.us, r.bytes, r.tbps, r.tflops,
                     i + 1 < results.size() ? "," : "");
      }
      std::fprintf(f, "  ]\n}\n");
      std::fclose(f);
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_linear: %s\n", e.what());
    return 1;
  }
  return 0;
}
