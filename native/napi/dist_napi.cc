// tessera N-API: the process group (native/dist). Collectives return a work id at
// once; distWait(id) blocks until this rank's part is done (CPU) or the tensor's
// stream is ordered after it (CUDA), and throws the collective's error. Synchronous
// JS calls wait at once; DDP enqueues buckets during backward and waits at its end.
//   distInfo() -> { mpiBuilt, mpiVersion, cudaBuilt, ncclLoaded, initialized }
//   distInit(timeoutSeconds, expectedRank, expectedSize) -> { rank, worldSize, localRank, localSize, library }
//   distFinalize(); distAbort(message, code) (never returns)
//   distNcclLoad(candidates) -> { loaded, path, version, why }
//   distAllReduce(t, op) -> id;  distAllReduceCoalesced([t...], op) -> [id, bucket]
//   distBroadcast(t, root) -> id;  distAllGather(t) -> [id, out];  distBarrier() -> id
//   distWait(id);  distDone(id) -> boolean
#include <unordered_map>

#include "dist/dist.h"
#include "dist/nccl.h"
#include "napi_util.h"

using namespace tsn;

namespace {

// Works in flight by id. Only the JS thread touches this table.
std::unordered_map<int64_t, ts::dist::WorkPtr> g_works;
int64_t g_next_work = 1;
bool g_cleanup_hooked = false;

Napi::Value track(Napi::Env env, ts::dist::WorkPtr w) {
  int64_t id = g_next_work++;
  g_works.emplace(id, std::move(w));
  return Napi::Number::New(env, static_cast<double>(id));
}

// At environment teardown: pending works are waited on (their destructors wait), then
// NCCL and MPI are finalized, so a process that exits without destroy() still leaves
// MPI cleanly (mpirun reports a process that exits without MPI_Finalize as failed).
void cleanup(void*) {
  try {
    g_works.clear();
    ts::dist::finalize();
  } catch (...) {
  }
}

}  // namespace

TS_NAPI(distInfo) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  o.Set("mpiBuilt", Napi::Boolean::New(env, ts::dist::mpi_built()));
  o.Set("mpiVersion", Napi::String::New(env, ts::dist::mpi_library_version()));
  o.Set("cudaBuilt", Napi::Boolean::New(env, ts::dist::nccl::cuda_built()));
  o.Set("ncclLoaded", Napi::Boolean::New(env, ts::dist::nccl::loaded()));
  o.Set("initialized", Napi::Boolean::New(env, ts::dist::initialized()));
  return o;
}

TS_NAPI(distInit) {
  const char* op = "init";
  double timeout = number_arg(info, 0, op);
  int expected_rank = static_cast<int>(int_arg(info, 1, op));
  int expected_size = static_cast<int>(int_arg(info, 2, op));
  ts::dist::InitResult r = ts::dist::init(timeout, expected_rank, expected_size);
  Napi::Env env = info.Env();
  if (!g_cleanup_hooked) {
    napi_add_env_cleanup_hook(env, cleanup, nullptr);
    g_cleanup_hooked = true;
  }
  Napi::Object o = Napi::Object::New(env);
  o.Set("rank", Napi::Number::New(env, r.rank));
  o.Set("worldSize", Napi::Number::New(env, r.world_size));
  o.Set("localRank", Napi::Number::New(env, r.local_rank));
  o.Set("localSize", Napi::Number::New(env, r.local_size));
  o.Set("library", Napi::String::New(env, r.library));
  return o;
}

TS_NAPI(distFinalize) {
  std::unordered_map<int64_t, ts::dist::WorkPtr> pending;
  pending.swap(g_works);
  for (auto& [id, w] : pending) w->wait();
  pending.clear();
  ts::dist::finalize();
  return info.Env().Undefined();
}

TS_NAPI(distAbort) {
  const char* op = "abort";
  std::string message = string_arg(info, 0, op);
  int code = static_cast<int>(int_arg(info, 1, op));
  ts::dist::abort_job(message, code);
}

TS_NAPI(distNcclLoad) {
  const char* op = "distNcclLoad";
  if (info.Length() < 1 || !info[0].IsArray()) ts::fail(op, "argument 0 must be an array of library paths");
  Napi::Array a = info[0].As<Napi::Array>();
  std::vector<std::string> candidates;
  for (uint32_t k = 0; k < a.Length(); ++k) {
    Napi::Value v = a.Get(k);
    if (!v.IsString()) ts::fail(op, "element ", k, " of argument 0 must be a string");
    candidates.push_back(v.As<Napi::String>().Utf8Value());
  }
  ts::dist::nccl::LoadResult r = ts::dist::nccl::load(candidates);
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  o.Set("loaded", Napi::Boolean::New(env, r.loaded));
  o.Set("path", Napi::String::New(env, r.path));
  o.Set("version", Napi::Number::New(env, r.version));
  o.Set("why", Napi::String::New(env, r.why));
  return o;
}

TS_NAPI(distAllReduce) {
  const char* op = "allReduce";
  ts::Tensor t = tensor_arg(info, 0, op);
  ts::dist::Reduce r = ts::dist::reduce_from_name(string_arg(info, 1, op), op);
  return track(info.Env(), ts::dist::all_reduce(t, r));
}

TS_NAPI(distAllReduceCoalesced) {
  const char* op = "allReduceCoalesced";
  std::vector<ts::Tensor> parts = tensor_list_arg(info, 0, op);
  ts::dist::Reduce r = ts::dist::reduce_from_name(string_arg(info, 1, op), op);
  ts::Tensor bucket;
  ts::dist::WorkPtr w = ts::dist::all_reduce_coalesced(parts, r, &bucket);
  Napi::Env env = info.Env();
  Napi::Array out = Napi::Array::New(env, 2);
  out.Set(0u, track(env, std::move(w)));
  out.Set(1u, wrap(env, bucket));
  return out;
}

TS_NAPI(distBroadcast) {
  const char* op = "broadcast";
  ts::Tensor t = tensor_arg(info, 0, op);
  int root = static_cast<int>(int_arg(info, 1, op));
  return track(info.Env(), ts::dist::broadcast(t, root));
}

TS_NAPI(distAllGather) {
  const char* op = "allGather";
  ts::Tensor t = tensor_arg(info, 0, op);
  ts::Tensor out;
  ts::dist::WorkPtr w = ts::dist::all_gather(t, &out);
  Napi::Env env = info.Env();
  Napi::Array a = Napi::Array::New(env, 2);
  a.Set(0u, track(env, std::move(w)));
  a.Set(1u, wrap(env, out));
  return a;
}

TS_NAPI(distBarrier) { return track(info.Env(), ts::dist::barrier()); }

TS_NAPI(distWait) {
  const char* op = "distWait";
  int64_t id = int_arg(info, 0, op);
  auto it = g_works.find(id);
  if (it == g_works.end()) ts::fail(op, "unknown work id ", id, " (already waited on, or never started)");
  ts::dist::WorkPtr w = std::move(it->second);
  g_works.erase(it);
  w->wait();
  return info.Env().Undefined();
}

TS_NAPI(distDone) {
  const char* op = "distDone";
  int64_t id = int_arg(info, 0, op);
  auto it = g_works.find(id);
  if (it == g_works.end()) ts::fail(op, "unknown work id ", id, " (already waited on, or never started)");
  return Napi::Boolean::New(info.Env(), it->second->done());
}
