// glibc's malloc_trim for the daemon (src/memory-trim.ts): Node offers no way to hand the heap
// pages glibc keeps of freed buffers back to the system. Elsewhere (musl, macOS) it is a no-op
// that says so, and the daemon does without.
#include <node_api.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif

static napi_value Trim(napi_env env, napi_callback_info info) {
  (void)info;
#if defined(__GLIBC__)
  // 0: keep no padding at the top of the heap; glibc also releases whole free pages inside it
  bool released = malloc_trim(0) != 0;
#else
  bool released = false;
#endif
  napi_value out;
  napi_get_boolean(env, released, &out);
  return out;
}

static napi_value Init(napi_env env, napi_value exports) {
  napi_value fn, supported;
#if defined(__GLIBC__)
  napi_get_boolean(env, true, &supported);
#else
  napi_get_boolean(env, false, &supported);
#endif
  napi_create_function(env, "trim", NAPI_AUTO_LENGTH, Trim, NULL, &fn);
  napi_set_named_property(env, exports, "trim", fn);
  napi_set_named_property(env, exports, "supported", supported);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, Init)
