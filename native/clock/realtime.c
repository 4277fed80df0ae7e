// The wall clock to the nanosecond for the daemon's timestamps (src/clock.ts). Node reads the
// wall clock only in whole milliseconds (Date.now); its fine clocks are monotonic, and a sub-
// millisecond part derived from them drifts from the wall clock by up to a millisecond, so a
// client reading its own clock around a call could find the daemon's time for it outside.
#include <node_api.h>
#include <time.h>

// Fills out[0] with whole milliseconds since the epoch and out[1] with nanoseconds past them
// (0 to 999999), from one reading: a Float64Array the caller keeps, so a reading allocates nothing.
static napi_value Read(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value arg;
  if (napi_get_cb_info(env, info, &argc, &arg, NULL, NULL) != napi_ok || argc < 1) {
    napi_throw_type_error(env, NULL, "read needs a Float64Array of 2");
    return NULL;
  }
  bool is_typed = false;
  napi_is_typedarray(env, arg, &is_typed);
  napi_typedarray_type type;
  size_t length = 0;
  void *data = NULL;
  if (!is_typed || napi_get_typedarray_info(env, arg, &type, &length, &data, NULL, NULL) != napi_ok ||
      type != napi_float64_array || length < 2) {
    napi_throw_type_error(env, NULL, "read needs a Float64Array of 2");
    return NULL;
  }
  struct timespec ts;
  if (clock_gettime(CLOCK_REALTIME, &ts) != 0) {
    napi_throw_error(env, NULL, "clock_gettime(CLOCK_REALTIME) failed");
    return NULL;
  }
  double *out = (double *)data;
  out[0] = (double)ts.tv_sec * 1000.0 + (double)(ts.tv_nsec / 1000000);
  out[1] = (double)(ts.tv_nsec % 1000000);
  return NULL;
}

static napi_value Init(napi_env env, napi_value exports) {
  napi_value fn;
  if (napi_create_function(env, "read", NAPI_AUTO_LENGTH, Read, NULL, &fn) != napi_ok ||
      napi_set_named_property(env, exports, "read", fn) != napi_ok) {
    return NULL;
  }
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, Init)
